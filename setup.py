"""Build hook: ship the top-level ``profiles/`` and ``runbooks/`` inside the wheel.

Operators edit and read these directories at the top of a checkout, so that is where they live.
A wheel can only carry files inside a package, so the build copies them to
``solcap/_shipped/<dir>/``, where :mod:`solcap.config.shipped` finds them with importlib.resources.
Everything else about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: Top-level directory -> the file names shipped from it.
SHIPPED = {"profiles": ("*.toml",), "runbooks": ("*.yaml", "*.yml", "*.toml")}


class BuildWithShipped(build_py):
    """``build_py`` that also copies the shipped profiles and runbooks into the package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout itself
        top = Path(__file__).resolve().parent
        for directory, patterns in SHIPPED.items():
            target = Path(self.build_lib) / "solcap" / "_shipped" / directory
            shutil.rmtree(target, ignore_errors=True)  # a file removed from the tree goes too
            target.mkdir(parents=True)
            for pattern in patterns:
                for source in sorted((top / directory).glob(pattern)):
                    shutil.copyfile(source, target / source.name)


setup(cmdclass={"build_py": BuildWithShipped})

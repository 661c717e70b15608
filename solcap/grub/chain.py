"""One model of a GRUB entry's boot chain: loader → hypervisor → Dom0 kernel → initrd.

Why one model: the same entry is edited in two places — as text in ``grub.cfg``
(:mod:`solcap.grub.cfg`) and on screen in GRUB's own editor (:mod:`solcap.grub.menu`). Both
must agree on *which line carries Xen's options and which carries Dom0's*, and that depends
on the chain, not on a keyword:

``multiboot2``  ``multiboot2 xen.gz XEN-OPTS`` then ``module2 vmlinuz DOM0-OPTS``, ``module2
                initrd`` (Debian/Ubuntu/Fedora ``20_linux_xen``, XCP-ng, Qubes);
``multiboot``   the same with legacy Multiboot v1 ``multiboot``/``module`` (older RHEL/CentOS
                ``20_linux_xen``, hand-written openSUSE entries);
``tboot``       Intel TXT: ``multiboot tboot.gz TBOOT-OPTS`` first, then ``module xen.gz
                XEN-OPTS``, ``module vmlinuz DOM0-OPTS``, ``module initrd``, ``module SINIT.BIN``
                (Qubes Anti Evil Maid, tboot's README). Xen's options are on the *first module*
                line, Dom0's on the second — never on tboot's line;
``arm64``       GRUB's ``xen_boot``: ``xen_hypervisor xen.efi XEN-OPTS``, ``xen_module vmlinuz
                DOM0-OPTS``, ``xen_module --nounzip initrd`` (Debian arm64, Raspberry Pi 4);
``slaunch``     TrenchBoot DRTM: ``slaunch`` (and ``slaunch_module``) before an ordinary
                ``multiboot2`` chain; the slaunch lines are never edited.

Anything else is refused with the reason. Two kinds: an entry that boots something other than
Xen (a plain ``linux`` entry, memtest86+, Windows through ``chainloader +1``, a loader whose
image does not look like Xen/tboot, a tboot chain without a Xen module) is
:class:`NotXenEntry`, which a caller looking for *the Xen entries* skips; an entry that may
boot Xen but cannot be edited safely (``chainloader`` of ``xen.efi`` — its options live in
``xen.cfg``, see :mod:`solcap.grub.xencfg` — a loader whose image is a ``$variable``, two
hypervisor lines in ``if`` branches, mixed protocols) is a plain :class:`ChainError`.

The model only needs each line's command and words, so it is built from grub.cfg text and
from what GRUB's editor shows alike. No I/O here.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Family = Literal["multiboot2", "multiboot", "tboot", "arm64", "slaunch"]
FAMILIES: tuple[Family, ...] = ("multiboot2", "multiboot", "tboot", "arm64", "slaunch")

#: Loader command -> the module command that goes with it.
_MODULE_OF = {"multiboot2": "module2", "multiboot": "module", "xen_hypervisor": "xen_module"}
_SLAUNCH = frozenset({"slaunch", "slaunch_module"})
_LINUX = frozenset({"linux", "linuxefi", "linux16", "kernel"})
_CHAIN = frozenset({"chainloader"})
_XEN_IMAGE = re.compile(r"xen", re.IGNORECASE)
_TBOOT_IMAGE = re.compile(r"^tboot", re.IGNORECASE)


class ChainError(ValueError):
    """The entry's chain is not one solcap can edit safely; the message says why."""


class NotXenEntry(ChainError):
    """The entry boots something other than Xen (Linux alone, memtest86+, tboot → Linux):
    not an error when looking for Xen entries, only when one was asked for by name."""


@dataclass(frozen=True)
class ChainLine:
    """One command of an entry, as far as the chain cares.

    ``index`` is the line's position in the list the model was built from (the caller maps it
    back to a grub.cfg line or an editor line); ``image`` is the first word after the command
    and its ``--options`` (``--nounzip``); ``args`` are the words after the image.
    """

    index: int
    command: str
    options: tuple[str, ...]
    image: str | None
    args: tuple[str, ...]

    @property
    def basename(self) -> str:
        return posixpath.basename(self.image or "")


@dataclass(frozen=True)
class Chain:
    """Which line is which in a Xen entry.

    ``hypervisor`` carries Xen's command line; ``kernel`` Dom0's (None when the entry has no
    module after Xen); ``first_stage`` is tboot's line or the ``slaunch`` line (never edited);
    ``initrd`` and ``extra`` (SINIT, microcode, XSM policy) are listed for the record.
    """

    family: Family
    hypervisor: ChainLine
    kernel: ChainLine | None
    initrd: tuple[ChainLine, ...] = ()
    first_stage: tuple[ChainLine, ...] = ()
    extra: tuple[ChainLine, ...] = ()

    def describe(self) -> str:
        """One line for a person: ``tboot: multiboot /tboot.gz → module /xen.gz → …``."""
        steps = [f"{line.command} {line.image or ''}".strip() for line in self.first_stage]
        steps.append(f"{self.hypervisor.command} {self.hypervisor.image}")
        if self.kernel is not None:
            steps.append(f"{self.kernel.command} {self.kernel.image}")
        steps += [f"{line.command} {line.image}" for line in self.initrd]
        return f"{self.family}: " + " → ".join(steps)


def split_command(index: int, words: Sequence[str]) -> ChainLine | None:
    """A :class:`ChainLine` from one line's words (None for an empty line)."""
    if not words:
        return None
    command = words[0]
    rest = list(words[1:])
    options: list[str] = []
    while rest and rest[0].startswith("--"):
        options.append(rest.pop(0))
    image = rest.pop(0) if rest else None
    return ChainLine(index, command, tuple(options), image, tuple(rest))


def _is_variable(word: str | None) -> bool:
    return word is not None and "$" in word


def _looks_like_xen(line: ChainLine) -> bool:
    return line.image is not None and bool(_XEN_IMAGE.search(line.basename))


def _boots_xen_maybe(line: ChainLine) -> bool:
    """Whether a loader line could start Xen: xen_hypervisor, a Xen or tboot image, or an
    image solcap cannot read (a ``$variable``)."""
    return (
        line.command == "xen_hypervisor"
        or _is_variable(line.image)
        or _looks_like_xen(line)
        or bool(_TBOOT_IMAGE.match(line.basename))
    )


def find_chain(lines: Sequence[ChainLine], title: str = "") -> Chain:
    """The chain of an entry whose command lines are ``lines`` (in order); else ChainError.

    :class:`NotXenEntry` (a ChainError) when the entry boots something else — Linux alone,
    memtest86+ (``linux``/``linux16``/``multiboot`` of a memtest image), Windows through
    ``chainloader +1``, ``fwsetup``: a caller looking for the Xen entries skips those. Any other
    ChainError is an entry that (may) boot Xen but cannot be edited safely.
    """
    what = f"entry {title!r}" if title else "the entry"
    slaunch = tuple(line for line in lines if line.command in _SLAUNCH)
    loaders = [line for line in lines if line.command in _MODULE_OF]
    if not loaders:
        chained = [line for line in lines if line.command in _CHAIN]
        if any(_looks_like_xen(line) or _is_variable(line.image) for line in chained):
            raise ChainError(
                f"{what} chainloads another EFI program: an EFI-booted xen.efi reads its "
                "options from xen.cfg beside it (edit that file instead)"
            )
        if chained:
            shown = ", ".join(f"chainloader {line.image}" for line in chained)
            raise NotXenEntry(f"{what} chainloads something other than Xen ({shown})")
        if any(line.command in _LINUX for line in lines):
            raise NotXenEntry(f"{what} boots Linux directly (linux/initrd): not a Xen entry")
        raise NotXenEntry(
            f"{what} has no multiboot2, multiboot or xen_hypervisor line: not a Xen entry"
        )
    if not any(_boots_xen_maybe(line) for line in loaders):
        # e.g. memtest86+'s `multiboot /boot/memtest86+_multiboot.bin` (Debian up to 11)
        shown = " and ".join(f"{line.command} loads {line.image}" for line in loaders)
        raise NotXenEntry(
            f"{what}: {shown}, which looks like neither Xen nor tboot (not a Xen entry); "
            "refusing to put Xen options on it"
        )
    if len(loaders) > 1:
        shown = ", ".join(f"{line.command} {line.image}" for line in loaders)
        raise ChainError(
            f"{what} has {len(loaders)} loader lines ({shown}), e.g. in if/else branches; "
            "refusing to guess which one boots"
        )
    loader = loaders[0]
    module_command = _MODULE_OF[loader.command]
    after = [line for line in lines if line.index > loader.index]
    modules = [line for line in after if line.command == module_command]
    stray = [line for line in after if line.command in _MODULE_OF.values()]
    if loader.image is None:
        raise ChainError(f"{what}: {loader.command} names no image")
    if _is_variable(loader.image):
        raise ChainError(
            f"{what}: {loader.command} loads {loader.image}, a GRUB variable: solcap cannot "
            "tell whether that is Xen, tboot or something else; edit by hand"
        )
    if len(stray) != len(modules):
        other = next(line for line in stray if line.command != module_command)
        raise ChainError(
            f"{what} mixes {loader.command} with {other.command} (line of {other.image}): "
            "GRUB loads those with different protocols; refusing"
        )
    if loader.command == "xen_hypervisor":
        return _plain("arm64", loader, modules, slaunch)
    if _TBOOT_IMAGE.match(loader.basename):
        return _tboot(what, loader, modules, slaunch)
    family: Family = "slaunch" if slaunch else loader.command  # type: ignore[assignment]
    return _plain(family, loader, modules, slaunch)


def _plain(
    family: Family,
    loader: ChainLine,
    modules: Sequence[ChainLine],
    slaunch: tuple[ChainLine, ...],
) -> Chain:
    """Xen is the loader; the first module is Dom0's kernel (Xen's rule), the next its initrd."""
    kernel = modules[0] if modules else None
    initrd = tuple(modules[1:2])
    extra = tuple(modules[2:])
    return Chain(family, loader, kernel, initrd, slaunch, extra)


def _tboot(
    what: str, loader: ChainLine, modules: Sequence[ChainLine], slaunch: tuple[ChainLine, ...]
) -> Chain:
    """tboot loads the first module as its kernel: that must be Xen, and Dom0 is the next one."""
    if not modules:
        raise NotXenEntry(f"{what}: tboot ({loader.image}) is followed by no module, so no Xen")
    xen = modules[0]
    if _is_variable(xen.image) or not _XEN_IMAGE.search(xen.basename):
        raise NotXenEntry(
            f"{what}: tboot's first module is {xen.image}, not Xen: a tboot chain without Xen "
            "(tboot booting Linux directly) has no Xen line to edit"
        )
    kernel = modules[1] if len(modules) > 1 else None
    initrd = tuple(modules[2:3])
    extra = tuple(modules[3:])
    return Chain("tboot", xen, kernel, initrd, (*slaunch, loader), extra)


__all__ = ["FAMILIES", "Chain", "ChainError", "ChainLine", "Family", "find_chain", "split_command"]

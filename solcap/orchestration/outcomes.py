"""One outcome vocabulary for every per-host job (harvest, runbook), beside the error tree.

A host ends as exactly one of:

``ok``       the job did what was asked;
``failed``   the far side failed (:class:`~solcap.errors.TargetError`: the BMC refused or did
             not answer, the console closed, a wait timed out, a death string appeared, a dump
             was incomplete, a runbook's ``failure`` pattern was printed);
``timeout``  the fleet's per-host time limit passed and the host was cancelled;
``error``    solcap could not carry the job out locally (configuration, the recording, a
             missing capability, an interruption, a bug).

:func:`classify` maps an exception onto that by the error tree alone, so a harvest fleet and a
runbook fleet report the same failure the same way. :class:`HostResult` is what a summary
lists per host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from solcap.errors import SolcapError, TargetError

__all__ = ["OUTCOMES", "HostResult", "Outcome", "classify", "one_line"]

Outcome = Literal["ok", "failed", "timeout", "error"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "failed", "timeout", "error")


@dataclass(frozen=True)
class HostResult:
    """One host's outcome, as a summary reports it. ``error`` is one line or None;
    ``recording`` is None when the console never opened (nothing was recorded)."""

    name: str
    outcome: Outcome
    error: str | None = None
    bytes: int = 0
    duration: float = 0.0
    recording: Path | None = None
    #: Job-specific facts for the JSON summary (the harvest puts its segments here).
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (``recording`` as a string or null)."""
        value: dict[str, Any] = {
            "host": self.name,
            "outcome": self.outcome,
            "error": self.error,
            "bytes": self.bytes,
            "duration": round(self.duration, 3),
            "recording": str(self.recording) if self.recording is not None else None,
        }
        value.update(self.details)
        return value


def classify(exc: BaseException) -> Outcome:
    """``failed`` when the far side failed (TargetError), ``error`` for anything local."""
    return "failed" if isinstance(exc, TargetError) else "error"


def one_line(exc: BaseException, host: str | None = None) -> str:
    """An exception as one line: solcap's own message, or the type and text of a bug.

    A leading ``<host>: `` is dropped when it only repeats the host the summary names anyway
    (a BMC address in front of the message is kept: it says which side failed).
    """
    if isinstance(exc, SolcapError):
        text = exc.one_line()
        if host is not None and text.startswith(f"{host}: "):
            text = text[len(host) + 2 :]
    else:
        text = f"internal error ({type(exc).__name__}): {exc}"
    return " ".join(text.split())

"""How a fleet run is shown to a person: a rich live bar on a terminal, one line per host
elsewhere, and the summary table at the end.

Presentation only (the CLI layer): :mod:`solcap.orchestration.fleet` reports through its
:class:`~solcap.orchestration.fleet.Progress` protocol and never imports rich, so a library user's
run prints nothing and loads no terminal code.
"""

from __future__ import annotations

import contextlib
from typing import Any, TextIO

from solcap.errors import UsageError
from solcap.orchestration.fleet import FleetSummary, NoProgress, Progress
from solcap.orchestration.outcomes import OUTCOMES, HostResult

__all__ = [
    "PlainProgress",
    "RichProgress",
    "make_progress",
    "plain_table",
    "result_line",
    "rich_table",
    "totals_line",
]


def result_line(result: HostResult, done: int | None = None, total: int | None = None) -> str:
    """``[3/50] node003: ok 4.1s 123456 bytes recordings/node003/…`` (+ error)."""
    head = f"[{done}/{total}] " if done is not None and total is not None else ""
    text = f"{head}{result.name}: {result.outcome} {result.duration:.1f}s {result.bytes} bytes"
    if result.recording is not None:
        text += f" {result.recording}"
    if result.error:
        text += f" -- {result.error}"
    return text


class PlainProgress:
    """One line per finished host (logs, CI, pipes), then a plain summary table."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        self.total = total

    def host_started(self, name: str) -> None:
        pass

    def host_done(self, result: HostResult) -> None:
        self.done += 1
        print(result_line(result, self.done, self.total), file=self.out, flush=True)

    def finish(self, summary: FleetSummary) -> None:
        print(plain_table(summary), file=self.out, flush=True)


class RichProgress:
    """A live bar with the running hosts on a terminal; finished hosts scroll above it."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console as RichConsole
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichBar

        self.console = RichConsole(file=out)
        self.bar = RichBar(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[running]}"),
            console=self.console,
        )
        self.task: Any = None
        self.running: list[str] = []
        self.done = 0
        self.total = 0

    def start(self, total: int) -> None:
        self.total = total
        self.task = self.bar.add_task("fleet", total=total, running="")
        self.bar.start()

    def _running_text(self) -> str:
        shown = ", ".join(self.running[:4])
        more = len(self.running) - 4
        return f"running: {shown}" + (f" +{more}" if more > 0 else "")

    def host_started(self, name: str) -> None:
        self.running.append(name)
        self.bar.update(self.task, running=self._running_text())

    def host_done(self, result: HostResult) -> None:
        from rich.markup import escape

        self.done += 1
        with contextlib.suppress(ValueError):
            self.running.remove(result.name)
        style = {"ok": "green", "failed": "red", "timeout": "yellow", "error": "magenta"}
        line = escape(result_line(result, self.done, self.total))
        self.bar.console.print(f"[{style[result.outcome]}]{line}[/]", highlight=False)
        self.bar.update(self.task, advance=1, running=self._running_text())

    def finish(self, summary: FleetSummary) -> None:
        self.bar.stop()
        self.console.print(rich_table(summary))


def make_progress(mode: str, out: TextIO) -> Progress:
    """``auto`` (rich on a terminal, plain lines otherwise), ``rich``, ``plain`` or ``none``."""
    if mode == "none":
        return NoProgress()
    if mode == "rich" or (mode == "auto" and _isatty(out)):
        return RichProgress(out)
    if mode in ("plain", "auto"):
        return PlainProgress(out)
    raise UsageError(f"progress {mode!r}: expected auto, rich, plain or none")


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _sorted_for_table(summary: FleetSummary) -> list[HostResult]:
    order = {"error": 0, "timeout": 1, "failed": 2, "ok": 3}
    return sorted(summary.results, key=lambda r: (order[r.outcome], r.name))


def totals_line(summary: FleetSummary) -> str:
    counts = summary.counts
    parts = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o])
    seconds = (summary.finished - summary.started).total_seconds()
    total_bytes = sum(r.bytes for r in summary.results)
    text = f"{len(summary.results)} hosts: {parts}; {total_bytes} bytes in {seconds:.1f}s"
    return text + (" (interrupted)" if summary.interrupted else "")


def plain_table(summary: FleetSummary) -> str:
    """The summary as fixed-width text (problems first), ending with the totals line."""
    rows = [("HOST", "OUTCOME", "SECONDS", "BYTES", "ERROR / RECORDING")]
    for r in _sorted_for_table(summary):
        rows.append((r.name, r.outcome, f"{r.duration:.1f}", str(r.bytes), _error_or_path(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  "
        f"{row[3]:>{widths[3]}}  {row[4]}".rstrip()
        for row in rows
    ]
    return "\n".join([*lines, totals_line(summary)])


def rich_table(summary: FleetSummary) -> Any:
    """The summary as a rich Table (problems first)."""
    from rich.table import Table

    table = Table(title=totals_line(summary), title_justify="left")
    table.add_column("host")
    table.add_column("outcome")
    table.add_column("seconds", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("error / recording", overflow="fold")
    style = {"ok": "green", "failed": "red", "timeout": "yellow", "error": "magenta"}
    for r in _sorted_for_table(summary):
        table.add_row(
            r.name,
            f"[{style[r.outcome]}]{r.outcome}[/]",
            f"{r.duration:.1f}",
            str(r.bytes),
            _error_or_path(r),
        )
    return table


def _error_or_path(result: HostResult) -> str:
    if result.error:
        return result.error
    return str(result.recording) if result.recording is not None else ""

"""One report from a path: pick the task, read it, build the account, render a format."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lowcarb import EmbodiedCarbon, InvalidInputError
from lowcarb.report._account import build_report
from lowcarb.report._plots import render_plots
from lowcarb.report._render import render_html, render_json, render_markdown
from lowcarb.report._source import LedgerSource, PathSource

__all__ = ["FORMATS", "make_report", "pick_task"]

#: Report formats by name.
FORMATS = ("md", "html", "json")


def pick_task(source: LedgerSource, task: str | None) -> str:
    """The task to report: the one named, or the only one there is.

    Raises:
        InvalidInputError: For an unknown task, none at all, or several and none named.
    """
    tasks = source.tasks()
    if task is not None:
        if task not in tasks:
            raise source.unknown_task(task)
        return task
    if not tasks:
        raise InvalidInputError(f"{source.label} holds no runs (no task ledgers)")
    if len(tasks) > 1:
        listed = ", ".join(tasks[:10]) + (" ..." if len(tasks) > 10 else "")
        raise InvalidInputError(
            f"{source.label} holds {len(tasks)} tasks ({listed}): choose one with --task"
        )
    return tasks[0]


def make_report(
    source: LedgerSource | str | Path,
    *,
    task: str | None = None,
    fmt: str = "md",
    embodied: EmbodiedCarbon | None = None,
    now: datetime | None = None,
) -> str:
    """A task's carbon report as text.

    Args:
        source: A ledger file, a state folder, or a :class:`LedgerSource`.
        task: The task (run id); None when there is only one.
        fmt: ``md``, ``html`` (needs matplotlib for its figures) or ``json``.
        embodied: Embodied carbon of the client devices (None: M not included).
        now: The report's date (UTC); defaults to now.

    Raises:
        InvalidInputError: For a bad path, task or format, or a run without rounds.
        DataValidationError: For a file that is not a lowcarb ledger, or a newer one.
        ConfigurationError: For HTML without matplotlib.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown report format {fmt!r}; use {', '.join(FORMATS)}")
    if not isinstance(source, LedgerSource):
        source = PathSource(source)
    snapshot = source.snapshot(pick_task(source, task))
    report = build_report(snapshot, embodied=embodied, now=now)
    if fmt == "json":
        return render_json(report)
    if fmt == "md":
        return render_markdown(report)
    return render_html(report, render_plots(snapshot, report))

"""The one way the benchmark scripts here write their section of ``docs/benchmarks.md``."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(block: str, begin: str, end: str, *, doc: Path = DOC, heading: str = "") -> None:
    """Replace what lies between ``begin`` and ``end`` in ``doc`` with ``block``.

    ``block`` starts with ``begin`` and ends with ``end``. Without the markers in ``doc``, the
    block is appended (under ``heading``, if given); nothing else in the file changes.
    """
    current = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if begin in current and end in current:
        before, rest = current.split(begin, 1)
        current = before + block + rest.split(end, 1)[1]
    else:
        title = f"## {heading}\n\n" if heading else ""
        current = current.rstrip() + "\n\n" + title + block + "\n"
    doc.write_text(current)

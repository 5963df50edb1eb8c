"""Carbon reports and the live dashboard, read from a training's participation ledger.

A :class:`LedgerSource` reads runs read-only, from a ledger file or a state folder
(:class:`PathSource`) or from a running server's tasks (:class:`EnginesSource`);
:func:`build_report` arranges a run's account (SCI terms, the random counterfactual,
forecast against actual, participation, equivalents, data licences, a paragraph for a
paper); :func:`make_report` renders it as Markdown, HTML or JSON. :func:`dashboard_routes`
serves the live dashboard (``lowcarb dashboard``, and ``/`` of ``lowcarb serve`` and
``lowcarb disco serve``).

Example:
    >>> from lowcarb.report import make_report
    >>> print(make_report("run.ledger.sqlite", fmt="md"))  # doctest: +SKIP
"""

from __future__ import annotations

from lowcarb._public import expose
from lowcarb.report._account import build_report
from lowcarb.report._dashboard import Dashboard, dashboard_app, dashboard_routes
from lowcarb.report._facts import EQUIVALENTS, DataSource, Equivalent, data_source
from lowcarb.report._make import FORMATS, make_report, pick_task
from lowcarb.report._plots import render_plots
from lowcarb.report._render import render_html, render_json, render_markdown
from lowcarb.report._source import EnginesSource, LedgerSource, PathSource, RunSnapshot

__all__ = [
    "EQUIVALENTS",
    "FORMATS",
    "Dashboard",
    "DataSource",
    "EnginesSource",
    "Equivalent",
    "LedgerSource",
    "PathSource",
    "RunSnapshot",
    "build_report",
    "dashboard_app",
    "dashboard_routes",
    "data_source",
    "make_report",
    "pick_task",
    "render_html",
    "render_json",
    "render_markdown",
    "render_plots",
]

expose(globals(), __all__, __name__)

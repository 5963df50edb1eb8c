"""Sweeps: one simulation per scenario (window, seed, ...), in parallel, resumable.

Each scenario runs :func:`~lowcarb.simulation.simulate` on its own in a worker: a local
process pool by default, or Ray (``ray=True``; a running cluster with ``ray_address``).
A simulation depends only on its scenario, so the rows are the same whichever runs them
(only the measured decision times differ). Each finished row is appended at once to the
results file (JSON Lines), and a scenario whose row is already there is not run again: an
interrupted sweep resumes where it stopped, and the file alone redraws the tables
(:func:`summarize_sweep`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from lowcarb import InvalidInputError, LowcarbError
from lowcarb.simulation._run import Scenario, simulate

__all__ = ["read_results", "scenario_key", "summarize_sweep", "sweep"]

#: A row: ``{"key": ..., "scenario": {...}, "policies": {name: {...}}}``.
Row = dict[str, Any]


def scenario_key(scenario: Scenario) -> str:
    """A stable identity of a scenario's inputs (16 hex digits), the row's key."""
    text = json.dumps(scenario.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _simulate_row(scenario: Scenario) -> Row:
    """One scenario's row (runs in a worker)."""
    return {"key": scenario_key(scenario), **simulate(scenario).to_dict()}


def read_results(path: Path) -> dict[str, Row]:
    """The rows of a results file by key; a torn last line (an interrupted write) is cut.

    Raises:
        InvalidInputError: If a complete line is not a row.
    """
    if not path.exists():
        return {}
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        # The last append did not finish: drop it, so the next one starts a clean line.
        data = data[: data.rfind(b"\n") + 1]
        with path.open("r+b") as handle:
            handle.truncate(len(data))
    rows: dict[str, Row] = {}
    for number, line in enumerate(data.decode().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows[str(row["key"])] = row
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}:{number} is not a sweep row ({exc})") from None
    return rows


def _append(path: Path, row: Row) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def sweep(
    scenarios: Sequence[Scenario],
    *,
    results: Path | None = None,
    workers: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """Simulate every scenario, in parallel, and return one row per scenario.

    Args:
        scenarios: The scenarios, e.g. one per window (``Scenario(start=...)``).
        results: JSON Lines file: rows already in it are reused, new rows appended as
            they finish. None keeps the rows in memory only.
        workers: Parallel simulations (default: the machine's cores; 1 runs them in this
            process). With ``ray_address`` the cluster decides.
        ray: Run the simulations as Ray tasks (a local Ray instance unless
            ``ray_address`` is given).
        ray_address: Address of a running Ray cluster (implies ``ray``); its workers need
            lowcarb installed and the scenarios' data files at the same paths.
        progress: Called as ``progress(done, total)`` after each scenario.

    Returns:
        The rows in the order of ``scenarios`` (a scenario listed twice runs once).

    Raises:
        InvalidInputError: For bad ``workers`` or a bad results file.
        ConfigurationError: When Ray is asked for but not installed.
        LowcarbError: The error of a simulation that failed, with a note naming its
            window (the rows finished before it are kept).
    """
    keys = [scenario_key(s) for s in scenarios]
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise InvalidInputError(f"workers must be a positive integer, got {workers!r}")
    done: dict[str, Row] = read_results(results) if results is not None else {}
    # A scenario listed twice runs once (both lists of a benchmark may hold it).
    unique = dict(zip(keys, scenarios, strict=True))
    todo = [(k, s) for k, s in unique.items() if k not in done]
    total = len(unique)
    if progress is not None:
        progress(total - len(todo), total)
    if ray or ray_address:
        finished = _on_ray([s for _, s in todo], workers, ray_address)
    else:
        finished = _on_processes([s for _, s in todo], workers or os.cpu_count() or 1)
    for row in finished:
        done[row["key"]] = row
        if results is not None:
            _append(results, row)
        if progress is not None:
            progress(sum(k in done for k in unique), total)
    return [done[k] for k in keys]


def _failed(scenario: Scenario, exc: LowcarbError) -> LowcarbError:
    """The error as raised, with a note naming the scenario it ended."""
    exc.add_note(f"in the sweep's window starting {scenario.start:%Y-%m-%dT%H:%MZ}")
    return exc


def _on_processes(scenarios: list[Scenario], workers: int) -> Iterator[Row]:
    """Rows as they finish, from a process pool (or this process with one worker)."""
    if workers == 1:
        for scenario in scenarios:
            try:
                yield _simulate_row(scenario)
            except LowcarbError as exc:
                raise _failed(scenario, exc) from None
        return
    with ProcessPoolExecutor(max_workers=min(workers, max(len(scenarios), 1))) as pool:
        pending: dict[Future[Row], Scenario] = {pool.submit(_simulate_row, s): s for s in scenarios}
        try:
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    scenario = pending.pop(future)
                    try:
                        yield future.result()
                    except LowcarbError as exc:
                        raise _failed(scenario, exc) from None
        finally:
            for future in pending:
                future.cancel()


def _on_ray(scenarios: list[Scenario], workers: int | None, address: str | None) -> Iterator[Row]:
    """Rows as they finish, from Ray tasks."""
    try:
        import ray as ray_module
    except ImportError:
        from lowcarb._extras import install_hint
        from lowcarb.exceptions import ConfigurationError

        raise ConfigurationError(
            f"--ray needs Ray: {install_hint('flower')}, as flwr[simulation] brings it, "
            "or pip install ray"
        ) from None
    started = not ray_module.is_initialized()
    if started:
        options: dict[str, Any] = {
            "log_to_driver": False,
            "include_dashboard": False,
            "logging_level": logging.WARNING,  # not "Started a local Ray instance"
        }
        if address:
            options["address"] = address
        elif workers is not None:
            options["num_cpus"] = workers
        with warnings.catch_warnings():
            # Ray 2.4x announces a future change of GPU environment handling; no GPU here.
            warnings.filterwarnings("ignore", "Tip: In future versions of Ray", FutureWarning)
            ray_module.init(**options)
    pending: dict[Any, Scenario] = {}
    try:
        task = ray_module.remote(num_cpus=1)(_simulate_row)
        pending = {task.remote(s): s for s in scenarios}
        while pending:
            ready, _ = ray_module.wait(list(pending), num_returns=1)
            for ref in ready:
                scenario = pending.pop(ref)
                try:
                    yield ray_module.get(ref)
                except ray_module.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)  # the task's own exception
                    if isinstance(cause, LowcarbError):
                        raise _failed(scenario, cause) from None
                    raise
    finally:
        for ref in pending:
            ray_module.cancel(ref)
        if started:
            ray_module.shutdown()


def _quartiles(values: Sequence[float]) -> list[float]:
    return [float(v) for v in np.percentile(np.asarray(values, dtype=float), [25, 50, 75])]


def summarize_sweep(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per policy, over the rows: saving, share of the oracle's saving, fairness, accuracy.

    A row's share is its saving divided by the ``oracle`` policy's saving in the same
    row (rows where the oracle saves nothing are left out of the shares).

    Returns:
        By policy: ``windows``, ``saving`` (25th, 50th, 75th percentile, fractions),
        ``oracle_share`` (median, min, 25th percentile; None without ``oracle``),
        ``jain`` (median, min), ``never_max``, ``accuracy_mean``,
        ``accuracy_vs_random`` (mean, worst; None without learning or ``random``),
        ``decision_ms_p50`` (median over rows of each row's p50, ms) and
        ``duration_hours`` (median, h).

    Raises:
        InvalidInputError: If there are no rows or they do not run the same policies.
    """
    if not rows:
        raise InvalidInputError("no rows to summarise")
    names = list(rows[0]["policies"])
    if any(list(r["policies"]) != names for r in rows):
        raise InvalidInputError("the rows do not run the same policies")
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = [r["policies"][name] for r in rows]
        saving = [p["saving_vs_random"] for p in runs]
        share = None
        if "oracle" in names:
            pairs = [
                (p["saving_vs_random"], r["policies"]["oracle"]["saving_vs_random"])
                for p, r in zip(runs, rows, strict=True)
            ]
            shares = [s / o for s, o in pairs if o > 0]
            if shares:
                share = {
                    "median": float(np.median(shares)),
                    "min": float(min(shares)),
                    "q25": float(np.percentile(shares, 25)),
                }
        jain = [p["participation"]["jain"] for p in runs]
        accuracy = [p["accuracy"] for p in runs]
        learned = all(a is not None for a in accuracy)
        versus = None
        if learned and "random" in names:
            delta = [
                a - r["policies"]["random"]["accuracy"] for a, r in zip(accuracy, rows, strict=True)
            ]
            versus = {"mean": float(np.mean(delta)), "worst": float(min(delta))}
        out[name] = {
            "windows": len(runs),
            "saving": _quartiles(saving),
            "oracle_share": share,
            "jain": {"median": float(np.median(jain)), "min": float(min(jain))},
            "never_max": int(max(p["participation"]["never"] for p in runs)),
            "accuracy_mean": float(np.mean(accuracy)) if learned else None,
            "accuracy_vs_random": versus,
            "decision_ms_p50": float(np.median([p["decision_ms"]["p50"] for p in runs])),
            "duration_hours": float(np.median([p["duration_hours"] for p in runs])),
        }
    return out

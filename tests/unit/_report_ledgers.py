"""Ledgers written by a real SelectionEngine for the report and dashboard tests.

Also a script, a training in progress for the browser tests: ``python _report_ledgers.py
PATH ROUNDS PLANNED`` trains one more round each time a line arrives on stdin, up to
``ROUNDS`` of a run of ``PLANNED``, and prints ``round N`` once round N is completed.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lowcarb

#: Zones the offline default provider serves, from clean to carbon-heavy.
ZONES = ("CA-ON", "GB", "US-CAL-CISO", "DE", "SG", "ZA")
START = datetime(2024, 6, 3, tzinfo=UTC)
TASK = "xray"


def hospitals(n: int = 30) -> list[lowcarb.Client]:
    """``n`` hospitals spread over :data:`ZONES`."""
    return [lowcarb.Client(f"hospital-{i:02d}", ZONES[i % len(ZONES)]) for i in range(n)]


def write_run(
    path: str | Path,
    *,
    rounds: int = 24,
    planned: int | None = None,
    k: int = 5,
    task: str = TASK,
    measured: bool = True,
    step: bool = False,
) -> Path:
    """Train ``rounds`` rounds of ``k`` of 30 hospitals, completing each with an accuracy.

    Every third round one client's energy is measured; the rest is modelled. The actual
    intensity is read back from the provider's history at completion. With ``step``, each
    round waits for a line on stdin and is announced on stdout when complete.
    """
    clock = lowcarb.ManualClock(START)
    clients = hospitals()
    with lowcarb.SelectionEngine(
        "default", rounds=planned or rounds, run_id=task, ledger=path, clock=clock
    ) as engine:
        for r in range(engine.rounds_done, rounds):
            if step and not sys.stdin.readline():
                break  # the test closed stdin: the training stops here
            decision = engine.select(clients, k=k)
            clock.set(decision.end)
            energy = {decision.selected[0]: 0.041} if measured and r % 3 == 0 else None
            engine.complete(
                decision, energy_kwh=energy, metrics={"accuracy": 0.55 + 0.35 * (1 - 0.9**r)}
            )
            clock.set(decision.start + timedelta(hours=1))
            if step:
                print(f"round {decision.round}", flush=True)
    return Path(path)


if __name__ == "__main__":
    write_run(sys.argv[1], rounds=int(sys.argv[2]), planned=int(sys.argv[3]), step=True)

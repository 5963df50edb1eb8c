"""Writer process for the ledger crash test (run as a script, not collected by pytest).

Usage: ``python _ledger_writer.py LEDGER_PATH RUN_ID``

Waits for one line on stdin (so the parent can start it early and hide the import
time), then records rounds as fast as it can, each with 10 client-rounds, resuming after the highest
recorded round. After ``record_round`` returns it prints ``committed N``; after the
round's ``complete_round`` returns it prints ``completed N``. Each line is flushed at
once, so a line the parent reads names a transaction that had committed. It stops by
itself only after ``MAX_ROUNDS`` or ``MAX_SECONDS`` (the parent kills it long before).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from lowcarb._ledger import ClientRound, Ledger, RoundRecord

CLIENTS = 30
PER_ROUND = 10
ZONES = ("DE", "FR", "PL")
MAX_ROUNDS = 20_000
MAX_SECONDS = 60.0
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def client_ids(n: int) -> list[str]:
    """The 10 distinct clients of round ``n`` (a rotating window over 30 clients)."""
    return [f"c{(n * 7 + i) % CLIENTS:02d}" for i in range(PER_ROUND)]


def zone_of(client_id: str) -> str:
    """The zone of a client."""
    return ZONES[int(client_id[1:]) % len(ZONES)]


def main(path: str, run_id: str) -> None:
    """Record rounds until killed."""
    if not sys.stdin.readline():  # the parent closed stdin without saying go
        return
    started = time.monotonic()
    ledger = Ledger(path)
    ledger.open_run(run_id, config={"writer": True}, now=T0)
    n = ledger.rounds_done(run_id)
    while n < MAX_ROUNDS and time.monotonic() - started < MAX_SECONDS:
        n += 1
        start = T0 + timedelta(hours=n)
        record = RoundRecord(
            round=n,
            decided_at=start,
            start=start,
            end=start + timedelta(hours=1),
            policy="crash-test",
            reason=f"round {n}",
            signal={"provider": "static", "fallback": None},
            candidates=CLIENTS,
            clients=tuple(
                ClientRound(
                    client_id=cid,
                    zone=zone_of(cid),
                    energy_kwh=0.1 * (i + 1),
                    energy_source="model",
                    intensity_used=100.0 + n,
                )
                for i, cid in enumerate(client_ids(n))
            ),
            random_expected_g=1000.0,
            metrics={"round": float(n)},
        )
        ledger.record_round(run_id, record)
        print(f"committed {n}", flush=True)
        ledger.complete_round(
            run_id,
            n,
            completed_at=start + timedelta(hours=1),
            actual={zone: 200.0 + n for zone in ZONES},
            random_actual_g=2000.0,
            metrics={"accuracy": n / (n + 1)},
        )
        print(f"completed {n}", flush=True)
    ledger.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""The run in the SCI's terms: E, I, O, M per R, with M only when embodied carbon is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lowcarb import ClientRound, EmbodiedCarbon, InvalidInputError, RoundRecord, summarize

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _record(n: int, *, accuracy: float | None = None, signal=None) -> RoundRecord:
    start = T0 + timedelta(hours=n)
    return RoundRecord(
        round=n,
        decided_at=start,
        start=start,
        end=start + timedelta(minutes=30),
        policy="lowcarb",
        reason="",
        signal=signal
        or {"provider": "p", "kind": "average", "basis": "lifecycle", "sources": {"DE": "p x"}},
        candidates=4,
        clients=(
            ClientRound("a", "DE", 0.1, "measured", 300.0, 310.0),
            ClientRound("b", "FR", 0.2, "model", 50.0),
        ),
        random_expected_g=60.0,
        metrics={} if accuracy is None else {"accuracy": accuracy},
        excluded=(ClientRound("c", "PL", 0.05, "reported", 700.0),),
    )


def test_sci_terms_without_embodied_carbon():
    summary = summarize([_record(1, accuracy=0.5), _record(2, accuracy=0.7)])
    sci = summary.sci()
    operational = 2 * (0.1 * 310 + 0.2 * 50 + 0.05 * 700)
    assert sci["operational_g"] == pytest.approx(operational)
    assert sci["energy_kwh"] == pytest.approx(2 * 0.35)
    assert sci["intensity_g_per_kwh"] == pytest.approx(operational / 0.7)
    assert sci["embodied_g"] is None and sci["total_g"] == pytest.approx(operational)
    assert sci["per_round_g"] == pytest.approx(operational / 2)
    assert sci["client_rounds"] == 4
    assert sci["per_client_round_g"] == pytest.approx(operational / 4)
    assert sci["accuracy_points"] == pytest.approx(20.0)
    assert sci["per_accuracy_point_g"] == pytest.approx(operational / 20)
    assert summary.measured_energy_kwh == pytest.approx(0.2)
    # Three devices (two selected, one that trained anyway) for half an hour, twice.
    assert summary.device_hours == pytest.approx(3.0)
    assert summary.signal_kinds == {"average lifecycle": 4}
    assert summary.providers == {"p": 4}


def test_embodied_carbon_is_amortised_over_the_time_reserved():
    spec_example = EmbodiedCarbon()
    # The SCI specification's example: 1000 kg over four years, one hour: about 28 g.
    assert spec_example.grams(1.0) == pytest.approx(1e6 / (4 * 365 * 24))
    assert 28 < spec_example.grams(1.0) < 29  # "around 28 g" in the spec's words
    half = EmbodiedCarbon(device_kg=200, lifetime=timedelta(days=365), resource_share=0.5)
    summary = summarize([_record(1)])
    sci = summary.sci(half)
    assert sci["embodied_g"] == pytest.approx(1.5 * 200e3 * 0.5 / (365 * 24))
    assert sci["total_g"] == pytest.approx(sci["operational_g"] + sci["embodied_g"])
    assert sci["per_accuracy_point_g"] is None


def test_fallback_share_counts_client_rounds_not_rounds():
    signal = {
        "provider": "p",
        "sources": {"DE": "p forecast", "FR": "default (fallback) history + profile"},
    }
    summary = summarize([_record(1, signal=signal), _record(2)])
    assert summary.fallback_share == pytest.approx(0.25)
    assert summary.providers == {"p": 3, "default": 1}
    assert summary.signal_kinds == {"not recorded": 2, "average lifecycle": 2}


@pytest.mark.parametrize(
    "bad",
    [
        {"device_kg": -1},
        {"device_kg": float("nan")},
        {"lifetime": timedelta(0)},
        {"resource_share": 0},
        {"resource_share": 1.5},
    ],
)
def test_embodied_carbon_refuses_nonsense(bad):
    with pytest.raises(InvalidInputError):
        EmbodiedCarbon(**bad)

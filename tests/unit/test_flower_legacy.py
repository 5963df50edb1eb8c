"""CarbonAwareClientManager: the legacy start_simulation/start_server API."""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from flwr.common import (
    Code,
    FitIns,
    FitRes,
    GetPropertiesIns,
    GetPropertiesRes,
    Status,
    ndarrays_to_parameters,
)
from flwr.server.client_proxy import ClientProxy
from flwr.server.criterion import Criterion

from lowcarb import Ledger, ManualClock, SelectionEngine
from lowcarb.adapters.flower import UNKNOWN_ZONE, CarbonAwareClientManager
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import InvalidInputError

START = datetime(2025, 3, 3, tzinfo=UTC)
ZONES = ["DE", "GB", "SG", "ZA"]


class Proxy(ClientProxy):
    """Answers get_properties with its zone and counts the calls."""

    def __init__(
        self, cid: str, zone: str | None, *, fail: bool = False, fit_fails: bool = False
    ) -> None:
        super().__init__(cid)
        self.zone, self.fail, self.fit_fails, self.asked = zone, fail, fit_fails, 0

    def get_properties(
        self, ins: GetPropertiesIns, timeout: float | None, group_id: int | None
    ) -> GetPropertiesRes:
        self.asked += 1
        if self.fail:
            raise TimeoutError("no answer")
        props = {} if self.zone is None else {"zone": self.zone}
        return GetPropertiesRes(Status(Code.OK, ""), props)

    def fit(self, ins: FitIns, timeout: float | None, group_id: int | None) -> FitRes:
        if self.fit_fails:
            raise RuntimeError("out of memory")
        return FitRes(Status(Code.OK, ""), ins.parameters, 10, {})

    def get_parameters(self, *a, **k):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    evaluate = reconnect = get_parameters


def manager(rounds: int, proxies: list[Proxy], **kw: object) -> CarbonAwareClientManager:
    clock = ManualClock(START)
    engine = SelectionEngine(
        DefaultProvider(clock=clock),
        ledger=Ledger(),
        rounds=rounds,
        clock=clock,
        round_interval=timedelta(hours=1),
        **kw,  # type: ignore[arg-type]
    )
    cm = CarbonAwareClientManager(engine)
    for p in proxies:
        cm.register(p)
    return cm


def configure_fit(
    cm: CarbonAwareClientManager,
    num_clients: int,
    min_num_clients: int | None = None,
    criterion: Criterion | None = None,
) -> list[ClientProxy]:
    """Samples the way a legacy strategy's configure_fit does (a training round), then
    has every sampled client fit, as the legacy server does."""
    sampled = cm.sample(num_clients, min_num_clients, criterion)
    fit(sampled)
    return sampled


def fit(proxies: list[ClientProxy]) -> None:
    for proxy in proxies:
        with contextlib.suppress(RuntimeError):  # the server counts it among the failures
            proxy.fit(FitIns(ndarrays_to_parameters([]), {}), None, None)


def test_only_training_samples_are_engine_rounds() -> None:
    # Flower's legacy Server samples for the initial parameters and FedAvg samples for
    # evaluation through the same sample(); neither is a training round.
    from flwr.common import ndarrays_to_parameters
    from flwr.server.strategy import FedAvg

    cm = manager(3, [Proxy(f"c{i}", ZONES[i % 4]) for i in range(4)])
    strategy = FedAvg(fraction_fit=0.5, fraction_evaluate=0.5, min_available_clients=4)
    params = ndarrays_to_parameters([])
    assert len(cm.sample(1)) == 1  # the server's request for initial parameters
    for server_round in (1, 2, 3):
        instructions = strategy.configure_fit(server_round, params, cm)
        assert len(instructions) == 2
        fit([proxy for proxy, _ in instructions])
        assert len(strategy.configure_evaluate(server_round, params, cm)) == 2
    cm.close_round()
    assert cm.engine.rounds_done == 3 and len(cm.decisions) == 3
    # 3 rounds x 2 of 4 clients: fair shares of 1.5 each.
    counts = Counter(c for d in cm.decisions for c in d.selected)
    assert sorted(counts.values()) == [1, 1, 2, 2]


def test_sample_follows_the_engine_fairly_and_asks_each_client_once() -> None:
    proxies = [Proxy(f"c{i}", ZONES[i % 4]) for i in range(8)]
    cm = manager(4, proxies)
    picked = [[p.cid for p in configure_fit(cm, 2, min_num_clients=8)] for _ in range(4)]
    assert picked == [list(d.selected) for d in cm.decisions]
    counts = Counter(cid for round_ in picked for cid in round_)
    assert sorted(counts.values()) == [1] * 8  # 4 rounds x 2 of 8 clients: once each
    assert all(p.asked == 1 for p in proxies)
    assert cm.zones == {f"c{i}": ZONES[i % 4] for i in range(8)}
    cm.close_round()
    assert cm.engine.rounds_done == 4
    # Simulated time moved one interval per round.
    assert cm.engine.clock.now() == START + timedelta(hours=4)


def test_silent_or_zoneless_clients_get_the_unknown_zone() -> None:
    proxies = [Proxy("a", "DE"), Proxy("b", None), Proxy("c", "GB", fail=True), Proxy("d", "SG")]
    cm = manager(2, proxies)
    assert len(configure_fit(cm, 2)) == 2
    assert cm.zones["b"] == UNKNOWN_ZONE
    assert cm.zones["c"] == UNKNOWN_ZONE


def test_criterion_filters_candidates_and_too_few_gives_empty() -> None:
    class OnlyEven(Criterion):
        def select(self, client: ClientProxy) -> bool:
            return int(client.cid[1:]) % 2 == 0

    cm = manager(3, [Proxy(f"c{i}", ZONES[i % 4]) for i in range(6)])
    chosen = configure_fit(cm, 2, criterion=OnlyEven())
    assert {p.cid for p in chosen} <= {"c0", "c2", "c4"}
    assert configure_fit(cm, 4, criterion=OnlyEven()) == []


def test_rejects_a_non_engine() -> None:
    with pytest.raises(InvalidInputError, match="SelectionEngine"):
        CarbonAwareClientManager("default")  # type: ignore[arg-type]


def test_energy_from_a_stopped_tracker() -> None:
    from types import SimpleNamespace

    from lowcarb.adapters.flower import energy_from_tracker

    stopped = SimpleNamespace(final_emissions_data=SimpleNamespace(energy_consumed=0.042))
    assert energy_from_tracker(stopped) == 0.042
    with pytest.raises(InvalidInputError, match="stop the tracker"):
        energy_from_tracker(SimpleNamespace(final_emissions_data=None))
    with pytest.raises(InvalidInputError, match=">= 0"):
        energy_from_tracker(
            SimpleNamespace(final_emissions_data=SimpleNamespace(energy_consumed=-1.0))
        )


def test_an_engine_that_rejects_unknown_zones_leaves_those_clients_out() -> None:
    proxies = [Proxy("a", "DE"), Proxy("b", None), Proxy("c", "GB"), Proxy("d", "SG")]
    cm = manager(2, proxies, unknown_zone="error")
    picked = [p.cid for p in configure_fit(cm, 2)]
    assert len(picked) == 2
    assert "b" not in picked


def test_clients_registering_during_a_sample_do_not_break_it() -> None:
    # Flower's runtime registers clients from another thread while sample() runs.
    cm = manager(2, [Proxy(f"c{i}", ZONES[i % 4]) for i in range(4)])

    class RegistersOneMore(Criterion):
        def select(self, client: ClientProxy) -> bool:
            if "late" not in cm.clients:
                cm.register(Proxy("late", "DE"))
            return True

    assert len(configure_fit(cm, 2, criterion=RegistersOneMore())) == 2


def test_clients_without_any_zone_are_sampled_as_flower_would() -> None:
    cm = manager(2, [Proxy(f"c{i}", None) for i in range(4)])
    assert len(configure_fit(cm, 2)) == 2
    assert cm.decisions == []


def test_a_client_whose_fit_fails_is_not_booked_and_keeps_its_share() -> None:
    proxies = [Proxy(f"c{i}", ZONES[i % 4], fit_fails=i == 1) for i in range(4)]
    cm = manager(4, proxies)
    for _ in range(4):
        configure_fit(cm, 2)
    cm.close_round()
    booked = [{c.client_id for c in r.clients} for r in cm.engine.records()]
    rounds_of_c1 = [d.round for d in cm.decisions if "c1" in d.selected]
    assert rounds_of_c1, "the failing client was sampled"
    for record, decision in zip(booked, cm.decisions, strict=True):
        assert record == set(decision.selected) - {"c1"}
    assert cm.engine.participation["c1"] == 0

"""CarbonAwareStrategy over an in-process Flower Grid (no Ray): selection, zones, time."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from _flower_grid import LocalGrid, initial_arrays, make_client_app
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from lowcarb import Ledger, ManualClock, SelectionEngine
from lowcarb.adapters.flower import UNKNOWN_ZONE, CarbonAwareStrategy
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import InvalidInputError

START = datetime(2025, 3, 3, tzinfo=UTC)
ZONES = ["DE", "GB", "SG", "US-CAL-CISO", "ZA", "KR"]


def engine(rounds: int, *, clock: ManualClock | None = None, **kw: object) -> SelectionEngine:
    clock = clock or ManualClock(START)
    return SelectionEngine(
        DefaultProvider(clock=clock),
        ledger=Ledger(),
        rounds=rounds,
        clock=clock,
        round_interval=timedelta(hours=1),
        **kw,  # type: ignore[arg-type]
    )


def sized(k: int, n: int, **kw: object) -> FedAvg:
    """FedAvg training ``k`` of ``n`` nodes a round by its own settings."""
    return FedAvg(fraction_train=k / n, min_train_nodes=k, **kw)  # type: ignore[arg-type]


def grid_of(n: int, **kw: object) -> LocalGrid:
    app = make_client_app(**kw)  # type: ignore[arg-type]
    return LocalGrid(app, [{"zone": ZONES[i % len(ZONES)]} for i in range(n)])


def trained(grid: LocalGrid, phase: str = "train") -> list[int]:
    return [node for kind, node, _ in grid.app.log if kind == phase]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "inner",
    [
        FedAvg(fraction_train=0.25),
        FedProx(fraction_train=0.25, proximal_mu=0.1),
        FedAdam(fraction_train=0.25),
    ],
    ids=["FedAvg", "FedProx", "FedAdam"],
)
def test_inner_strategy_trains_exactly_the_selected_nodes(inner) -> None:
    grid = grid_of(12)
    strategy = CarbonAwareStrategy(inner, engine(4))
    result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=4)
    assert len(strategy.decisions) == 4
    log = grid.app.log  # type: ignore[attr-defined]
    for r, decision in enumerate(strategy.decisions, start=1):
        # 12 nodes x fraction 0.25 -> 3 per round, exactly the engine's choice.
        assert len(decision.selected) == 3
        this_round = {
            node for kind, node, cfg in log if kind == "train" and cfg["server-round"] == r
        }
        assert this_round == {int(i) for i in decision.selected}
    # The inner strategy still aggregated (weights moved) and configured its own keys.
    assert result.arrays["w"].numpy().tolist() != [0.0, 0.0, 0.0]
    if isinstance(inner, FedProx):
        assert all(cfg["proximal-mu"] == 0.1 for kind, _, cfg in log if kind == "train")
    # Its sampling settings are as the user set them.
    assert (inner.fraction_train, inner.min_train_nodes, inner.min_available_nodes) == (0.25, 2, 2)


def test_selection_is_fair_over_rounds() -> None:
    grid = grid_of(12)
    strategy = CarbonAwareStrategy(sized(3, 12), engine(8))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=8)
    counts = Counter(trained(grid))
    # 8 rounds x 3 of 12 nodes: a fair share of 2 each.
    assert set(counts) == set(grid.contexts)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_carbon_aware_selection_beats_random_expectation_and_reports_it() -> None:
    grid = grid_of(24)
    strategy = CarbonAwareStrategy(sized(4, 24), engine(6, fairness=0.0))
    result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=6)
    chosen = sum(d.expected_emissions_g for d in strategy.decisions)
    random = sum(d.random_expected_g for d in strategy.decisions)
    assert chosen < random
    metrics = result.train_metrics_clientapp
    assert sorted(metrics) == [1, 2, 3, 4, 5, 6]
    ledger_rounds = strategy.engine.ledger.rounds(strategy.engine.run_id)
    for record in ledger_rounds:
        assert metrics[record.round]["lowcarb-emissions-g"] == pytest.approx(record.emissions_g)
        assert metrics[record.round]["lowcarb-nodes"] == 4
    # The client's own metric survives next to the carbon figures.
    assert metrics[1]["loss"] == pytest.approx(1.0)


def test_measured_energy_replaces_the_model() -> None:
    grid = grid_of(6, energy=0.25)
    strategy = CarbonAwareStrategy(sized(2, 6), engine(2))
    result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=2)
    for r in (1, 2):
        assert result.train_metrics_clientapp[r]["lowcarb-energy-kwh"] == pytest.approx(0.5)
        assert result.train_metrics_clientapp[r]["lowcarb-measured-nodes"] == 2
        assert result.train_metrics_clientapp[r]["lowcarb-modelled-nodes"] == 0
        assert result.train_metrics_clientapp[r]["lowcarb-modelled-share"] == 0.0
    sources = {
        c.energy_source for rec in strategy.engine.ledger.rounds("default") for c in rec.clients
    }
    assert sources == {"measured"}


@pytest.mark.parametrize("mode", ["inner", "train", "carbon"])
def test_evaluation_modes(mode: str) -> None:
    grid = grid_of(12)
    inner = sized(3, 12, fraction_evaluate=0.5)
    strategy = CarbonAwareStrategy(inner, engine(3), evaluation=mode)  # type: ignore[arg-type]
    result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=3)
    evaluated = grid.sent_to("evaluate")
    size = 3 if mode == "train" else 6  # else the inner strategy's fraction_evaluate of 12
    rounds = [evaluated[i : i + size] for i in range(0, len(evaluated), size)]
    assert len(rounds) == 3 and all(len(set(nodes)) == size for nodes in rounds)
    for decision, nodes in zip(strategy.decisions, rounds, strict=True):
        if mode == "train":
            assert set(nodes) == {int(i) for i in decision.selected}
    assert sorted(result.evaluate_metrics_clientapp) == [1, 2, 3]
    # Evaluation never counts as a training round.
    assert strategy.engine.rounds_done == 3
    if mode == "carbon":
        counts = Counter(evaluated)
        assert max(counts.values()) - min(counts.values()) <= 1  # its own fair shares
        assert strategy.engine.ledger.rounds_done("default/evaluate") == 3


def test_by_default_the_inner_strategy_evaluates_as_without_lowcarb() -> None:
    # FedAvg's default fraction_evaluate=1.0: every node evaluates every round.
    grid = grid_of(10)
    strategy = CarbonAwareStrategy(sized(3, 10), engine(2))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=2)
    assert Counter(grid.sent_to("evaluate")) == dict.fromkeys(grid.contexts, 2)


def test_inner_fraction_evaluate_zero_turns_client_evaluation_off() -> None:
    grid = grid_of(6)
    for mode in ("inner", "train", "carbon"):
        strategy = CarbonAwareStrategy(
            sized(2, 6, fraction_evaluate=0.0),
            engine(2),
            evaluation=mode,  # type: ignore[arg-type]
        )
        strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=2)
    assert grid.sent_to("evaluate") == []


def test_zones_are_queried_once_and_resolved() -> None:
    app = make_client_app()
    configs = [
        {"zone": "de"},
        {"zone": "51.5,-0.12"},
        {"zone": "aws:ap-southeast-1"},
        {"zone": "ZA"},
    ]
    grid = LocalGrid(app, configs)
    strategy = CarbonAwareStrategy(sized(2, 4), engine(3))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=2)
    assert strategy.zones.known == {1000: "DE", 1001: "GB", 1002: "SG", 1003: "ZA"}
    assert sorted(grid.sent_to("query.lowcarb_zone")) == [1000, 1001, 1002, 1003]
    # A node joining later is asked; the known ones are not asked again.
    new = grid.add_node({"zone": "KR"})
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    assert sorted(grid.sent_to("query.lowcarb_zone")) == [1000, 1001, 1002, 1003, new]
    assert strategy.zones.known[new] == "KR"


def test_zone_from_a_user_function_on_the_client() -> None:
    app = make_client_app(zone=lambda ctx: ZONES[int(ctx.node_config["partition-id"]) % 3])
    grid = LocalGrid(app, [{"partition-id": i, "num-partitions": 6} for i in range(6)])
    strategy = CarbonAwareStrategy(sized(2, 6), engine(1))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    assert list(strategy.zones.known.values()) == ["DE", "GB", "SG", "DE", "GB", "SG"]


def test_simulated_nodes_take_their_zone_from_the_run_config() -> None:
    # The docs' one line: lowcarb.zones in [tool.flwr.app.config], read by partition-id.
    grid = LocalGrid(
        make_client_app(),
        [{"partition-id": i, "num-partitions": 5} for i in range(5)],
        run_config={"lowcarb.zones": "DE, GB,SG"},
    )
    strategy = CarbonAwareStrategy(sized(2, 5), engine(1))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    assert list(strategy.zones.known.values()) == ["DE", "GB", "SG", "DE", "GB"]
    assert strategy.engine.rounds_done == 1


def test_server_side_mapping_and_locations_need_no_query() -> None:
    app = make_client_app(zone_helper=False)
    grid = LocalGrid(app, [{} for _ in range(4)], locations={1002: "1.35,103.8", 1003: "52.5,13.4"})
    strategy = CarbonAwareStrategy(
        sized(2, 4), engine(1), zones={1000: "FR", 1001: "GB"}, query_zones=False
    )
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    assert strategy.zones.known == {1000: "FR", 1001: "GB", 1002: "SG", 1003: "DE"}
    assert grid.sent_to("query.lowcarb_zone") == []


def test_unknown_zones_never_stop_the_run(caplog: pytest.LogCaptureFixture) -> None:
    # Node 1000 runs a ClientApp without the helper (the query fails), 1001 has no zone,
    # 1002 names a zone nobody serves; the rest are known.
    helper = make_client_app()
    grid = LocalGrid(
        helper, [{"zone": "DE"}, {}, {"zone": "Atlantis"}, {"zone": "GB"}, {"zone": "SG"}]
    )
    plain = make_client_app(zone_helper=False)
    original = grid.app

    def route(msg, context):  # type: ignore[no-untyped-def]
        return (plain if context.node_id == 1000 else original)(msg, context)

    grid.app = route  # type: ignore[assignment]
    strategy = CarbonAwareStrategy(sized(2, 5), engine(5))
    with caplog.at_level(logging.WARNING, logger="flwr.lowcarb"):
        strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=5)
    zones = strategy.zones.known
    assert zones[1000] == UNKNOWN_ZONE
    assert zones[1001] == UNKNOWN_ZONE
    assert zones[1002] == "Atlantis"
    assert strategy.engine.rounds_done == 5
    # The engine's fallback rule (mean of known zones) is noted in the decisions.
    assert any(d.fallback for d in strategy.decisions)
    assert "zone unknown" in caplog.text


def test_engine_that_rejects_unknown_zones_leaves_those_nodes_out() -> None:
    grid = LocalGrid(make_client_app(), [{"zone": "DE"}, {}, {"zone": "GB"}, {"zone": "SG"}])
    strategy = CarbonAwareStrategy(sized(2, 4), engine(3, unknown_zone="error"))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=3)
    assert 1001 not in trained(grid)
    assert strategy.engine.rounds_done == 3
    # It never trained, and the fairness summary says so.
    assert strategy.engine.participation["1001"] == 0
    assert strategy.engine.summary().participation["never"] >= 1


def test_waits_for_the_expected_nodes_before_the_first_selection() -> None:
    # Nodes connect gradually: 2, then 5, then all 10.
    grid = grid_of(10)
    grid.grow = [2, 5]
    strategy = CarbonAwareStrategy(
        FedAvg(fraction_train=0.5), engine(1), min_nodes=10, poll_interval=0.01
    )
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    decision = strategy.decisions[0]
    assert len(decision.clients) == 10  # every node was a candidate
    assert len(decision.selected) == 5  # 0.5 of 10, not of the 2 seen first


def test_waiting_for_nodes_is_bounded_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    grid = grid_of(4)
    strategy = CarbonAwareStrategy(
        sized(2, 4), engine(1), min_nodes=50, node_timeout=0.05, poll_interval=0.01
    )
    with caplog.at_level(logging.INFO, logger="flwr.lowcarb"):
        strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    assert "waiting for nodes" in caplog.text
    assert "only 4 of 50 nodes connected" in caplog.text
    assert len(strategy.decisions[0].selected) == 2


def test_simulated_time_advances_one_round_interval_per_round() -> None:
    clock = ManualClock(START)
    strategy = CarbonAwareStrategy(sized(2, 6), engine(3, clock=clock))
    strategy.start(grid=grid_of(6), initial_arrays=initial_arrays(), num_rounds=3)
    assert [d.start for d in strategy.decisions] == [START + timedelta(hours=h) for h in range(3)]
    assert clock.now() == START + timedelta(hours=3)
    # The round ended in simulated time, so its actual intensity is in the ledger.
    assert all(
        c.intensity_actual is not None
        for rec in strategy.engine.ledger.rounds("default")
        for c in rec.clients
    )


def test_time_shift_waits_on_the_simulated_clock(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(START)
    eng = engine(4, clock=clock, deadline=timedelta(hours=48))
    strategy = CarbonAwareStrategy(sized(2, 6), eng)
    with caplog.at_level(logging.INFO, logger="flwr.lowcarb"):
        strategy.start(grid=grid_of(6), initial_arrays=initial_arrays(), num_rounds=4)
    starts = [d.start for d in strategy.decisions]
    assert len(starts) == 4
    # The plan spread the rounds over the 48 h instead of running them back to back,
    # and every round ended before the deadline.
    assert starts[-1] - starts[0] > timedelta(hours=3)
    assert max(d.end for d in strategy.decisions) <= START + timedelta(hours=48)
    assert "waits" in caplog.text


def test_bad_arguments_are_rejected() -> None:
    eng = engine(1)
    with pytest.raises(InvalidInputError, match="min_nodes"):
        CarbonAwareStrategy(FedAvg(), eng, min_nodes=0)
    with pytest.raises(InvalidInputError, match="evaluation"):
        CarbonAwareStrategy(FedAvg(), eng, evaluation="some")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Strategy"):
        CarbonAwareStrategy(object(), eng)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="SelectionEngine"):
        CarbonAwareStrategy(FedAvg(), "default")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="zones"):
        CarbonAwareStrategy(FedAvg(), eng, zones=["DE"])  # type: ignore[arg-type]


def test_train_config_reaches_the_selected_nodes() -> None:
    grid = grid_of(6)
    strategy = CarbonAwareStrategy(sized(3, 6), engine(1))
    strategy.start(
        grid=grid,
        initial_arrays=initial_arrays(),
        num_rounds=1,
        train_config=ConfigRecord({"lr": 0.1}),
    )
    configs = [cfg for kind, _, cfg in grid.app.log if kind == "train"]  # type: ignore[attr-defined]
    assert len(configs) == 3
    assert all(cfg["lr"] == 0.1 and cfg["server-round"] == 1 for cfg in configs)


class SleepingClock:
    """A wall clock stand-in: time moves only by sleep(), which records how long."""

    def __init__(self, start: datetime) -> None:
        self.time, self.sleeps = start, []

    def now(self) -> datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += timedelta(seconds=seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def test_deployment_waits_for_the_planned_slot_by_sleeping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SleepingClock(START)
    eng = SelectionEngine(
        DefaultProvider(clock=clock),
        ledger=Ledger(),
        rounds=3,
        clock=clock,
        round_interval=timedelta(hours=1),
        deadline=timedelta(hours=36),
    )
    strategy = CarbonAwareStrategy(sized(2, 6), eng)
    assert strategy.simulated_time is False
    with caplog.at_level(logging.INFO, logger="flwr.lowcarb"):
        strategy.start(grid=grid_of(6), initial_arrays=initial_arrays(), num_rounds=3)
    assert clock.sleeps, "the plan paused at least once"
    # Only the waits moved time (the wrapper does not advance a real clock), and each
    # round started exactly when the sleeping ended.
    assert clock.time == START + timedelta(seconds=sum(clock.sleeps))
    assert strategy.decisions[-1].start == clock.time
    assert all(d.end <= START + timedelta(hours=36) for d in strategy.decisions)
    assert "waits" in caplog.text


def test_a_wrapped_inner_strategy_samples_exactly_the_selection() -> None:
    # Flower's DP wrappers hold the sampling strategy in .strategy; its fraction (0.25)
    # sizes the round and it must take all the selected nodes, not a random subset.
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

    grid = grid_of(12)
    inner = DifferentialPrivacyServerSideFixedClipping(
        FedAvg(fraction_train=0.25),
        noise_multiplier=0.0,
        clipping_norm=100.0,
        num_sampled_clients=3,
    )
    strategy = CarbonAwareStrategy(inner, engine(3))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=3)
    log = grid.app.log  # type: ignore[attr-defined]
    for r, decision in enumerate(strategy.decisions, start=1):
        assert len(decision.selected) == 3
        this_round = {
            node for kind, node, cfg in log if kind == "train" and cfg["server-round"] == r
        }
        assert this_round == {int(i) for i in decision.selected}
    assert inner.strategy.fraction_train == 0.25  # type: ignore[attr-defined]


def test_bad_measured_energy_is_logged_and_the_model_stands_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    grid = grid_of(6, energy=-1.0)
    strategy = CarbonAwareStrategy(sized(2, 6), engine(1))
    with caplog.at_level(logging.WARNING, logger="flwr.lowcarb"):
        result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    assert result.train_metrics_clientapp[1]["lowcarb-measured-nodes"] == 0
    sources = {c.energy_source for c in strategy.engine.ledger.rounds("default")[0].clients}
    assert sources == {"model"}
    assert "reported energy-kwh=-1.0" in caplog.text


def test_a_zone_lookup_the_provider_cannot_answer_keeps_the_text() -> None:
    from lowcarb.adapters.flower import ZoneDirectory
    from lowcarb.exceptions import ProviderUnavailableError

    def unreachable(text: str) -> str:
        raise ProviderUnavailableError("zone list unreachable")

    directory = ZoneDirectory(unreachable, zones={1000: "DE"}, query=False, use_location=False)
    assert directory.lookup(grid_of(1), [1000]) == {1000: "DE"}


def test_a_planned_wait_decides_again_among_the_nodes_still_there() -> None:
    clock = SleepingClock(START)
    eng = SelectionEngine(
        DefaultProvider(clock=clock),
        ledger=Ledger(),
        rounds=3,
        clock=clock,
        round_interval=timedelta(hours=1),
        deadline=timedelta(hours=36),
    )
    grid = grid_of(6)
    everyone = list(grid.contexts)
    # Two nodes disconnect while the strategy waits (time moves only by its sleeps).
    grid.get_node_ids = lambda: everyone[:4] if clock.sleeps else everyone  # type: ignore[method-assign]
    strategy = CarbonAwareStrategy(sized(2, 6, min_available_nodes=4), eng)
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=3)
    assert clock.sleeps, "the plan paused at least once"
    after = [d for d in strategy.decisions if d.decided_at > START]
    assert after
    assert all(len(d.clients) == 4 for d in after)
    assert not {1004, 1005} & set(trained(grid)[-2 * len(after) :])


def test_simulated_time_needs_a_manual_clock() -> None:
    clock = SleepingClock(START)
    eng = SelectionEngine(DefaultProvider(clock=clock), ledger=Ledger(), rounds=1, clock=clock)
    with pytest.raises(InvalidInputError, match="ManualClock"):
        CarbonAwareStrategy(FedAvg(), eng, simulated_time=True)
    with pytest.raises(InvalidInputError, match="poll_interval"):
        CarbonAwareStrategy(FedAvg(), eng, poll_interval=float("nan"))


def test_nodes_without_any_zone_train_without_lowcarb(caplog: pytest.LogCaptureFixture) -> None:
    # The five-line diff in a simulation: node_config has no "zone", so no node can be
    # costed; the run goes on with the inner strategy's own sampling and says how to fix it.
    grid = LocalGrid(make_client_app(), [{"partition-id": i} for i in range(6)])
    strategy = CarbonAwareStrategy(FedAvg(fraction_train=0.5), engine(2), evaluation="carbon")
    with caplog.at_level(logging.WARNING, logger="flwr.lowcarb"):
        strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=2)
    assert len(trained(grid)) == 2 * 3
    assert len(trained(grid, "evaluate")) == 2 * 6
    assert strategy.decisions == []
    assert strategy.engine.rounds_done == 0
    assert "--node-config 'zone=\"DE\"'" in caplog.text


def test_continuing_a_ledger_run_is_announced(caplog: pytest.LogCaptureFixture) -> None:
    ledger, clock = Ledger(), ManualClock(START)

    def fresh() -> SelectionEngine:
        return SelectionEngine(DefaultProvider(clock=clock), ledger=ledger, rounds=2, clock=clock)

    CarbonAwareStrategy(sized(2, 4), fresh()).start(
        grid=grid_of(4), initial_arrays=initial_arrays(), num_rounds=2
    )
    assert "already holds" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="flwr.lowcarb"):
        CarbonAwareStrategy(sized(2, 4), fresh()).start(
            grid=grid_of(4), initial_arrays=initial_arrays(), num_rounds=1
        )
    assert "ledger run 'default' already holds 2 rounds" in caplog.text

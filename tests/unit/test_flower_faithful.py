"""Flower's settings keep their meaning under CarbonAwareStrategy; the ledger books what ran."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from _flower_grid import LocalGrid, initial_arrays, make_client_app
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.config import get_project_dir
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedXgbCyclic

from lowcarb import Client, Ledger, ManualClock, SelectionEngine
from lowcarb.adapters.flower import CarbonAwareStrategy, engine_for_run
from lowcarb.backends import DefaultProvider
from lowcarb.exceptions import ConfigurationError

START = datetime(2025, 3, 3, tzinfo=UTC)
ZONES = ["DE", "GB", "SG", "US-CAL-CISO", "ZA", "KR"]


def engine(rounds: int, **kw: object) -> SelectionEngine:
    clock = ManualClock(START)
    return SelectionEngine(
        DefaultProvider(clock=clock),
        ledger=Ledger(),
        rounds=rounds,
        clock=clock,
        round_interval=timedelta(hours=1),
        **kw,  # type: ignore[arg-type]
    )


def grid_of(n: int, **kw: object) -> LocalGrid:
    return LocalGrid(make_client_app(**kw), [{"zone": ZONES[i % 6]} for i in range(n)])  # type: ignore[arg-type]


def test_fraction_train_zero_trains_nobody_and_books_nothing() -> None:
    grid = grid_of(6)
    inner = FedAvg(fraction_train=0.0, fraction_evaluate=1.0)
    strategy = CarbonAwareStrategy(inner, engine(3))
    result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=3)
    assert grid.sent_to("train") == []
    assert len(result.arrays) == 0 and result.train_metrics_clientapp == {}  # nothing trained
    assert strategy.engine.rounds_done == 0
    assert len(grid.sent_to("evaluate")) == 3 * 6  # evaluation only, as Flower says


def test_the_inner_strategys_count_decides_how_many_train() -> None:
    # fraction 0.5 of 10 with min_train_nodes 3: Flower's rule gives 5.
    grid = grid_of(10)
    strategy = CarbonAwareStrategy(FedAvg(fraction_train=0.5, min_train_nodes=3), engine(2))
    strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=2)
    assert [len(d.selected) for d in strategy.decisions] == [5, 5]


def test_fedxgb_cyclic_books_its_one_node_a_round() -> None:
    grid = grid_of(5)
    strategy = CarbonAwareStrategy(FedXgbCyclic(fraction_evaluate=0.0), engine(5))
    result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=5)
    assert len(grid.sent_to("train")) == 5
    records = strategy.engine.records()
    assert [len(r.clients) for r in records] == [1] * 5
    # Every node its turn (a fair share of one), the cyclic strategy still aggregating.
    assert sorted(Counter(grid.sent_to("train")).values()) == [1] * 5
    assert result.train_metrics_clientapp[5]["lowcarb-nodes"] == 1


def test_a_node_whose_training_fails_is_not_booked_and_keeps_its_share(
    caplog: pytest.LogCaptureFixture,
) -> None:
    grid = grid_of(6, fail=frozenset({1001}))
    strategy = CarbonAwareStrategy(FedAvg(fraction_train=0.5, fraction_evaluate=0.0), engine(4))
    with caplog.at_level(logging.INFO, logger="flwr.lowcarb"):
        result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=4)
    failed_rounds = [d.round for d in strategy.decisions if "1001" in d.selected]
    assert failed_rounds, "the failing node was selected at least once"
    for record in strategy.engine.records():
        assert "1001" not in {c.client_id for c in record.clients}
        metrics = result.train_metrics_clientapp[record.round]
        assert metrics["lowcarb-nodes"] == len(record.clients)
        assert metrics["lowcarb-failed-nodes"] == (1 if record.round in failed_rounds else 0)
    assert strategy.engine.participation["1001"] == 0
    assert "did not train and keep their share" in caplog.text


def test_modelled_energy_is_said_in_metrics_and_log(caplog: pytest.LogCaptureFixture) -> None:
    grid = grid_of(6)
    strategy = CarbonAwareStrategy(FedAvg(fraction_train=0.5), engine(2))
    with caplog.at_level(logging.INFO, logger="flwr.lowcarb"):
        result = strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=2)
    metrics = result.train_metrics_clientapp[1]
    assert metrics["lowcarb-modelled-nodes"] == 3 and metrics["lowcarb-measured-nodes"] == 0
    assert metrics["lowcarb-modelled-share"] == 1.0
    assert "modelled for 3 of 3 nodes" in caplog.text
    assert caplog.text.count("not measured") == 1  # said once, not every round


def test_training_every_node_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    grid = grid_of(4)
    strategy = CarbonAwareStrategy(FedAvg(), engine(3))  # Flower's default fraction 1.0
    with caplog.at_level(logging.INFO, logger="flwr.lowcarb"):
        strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=3)
    assert caplog.text.count("cannot choose which nodes train") == 1
    grid = grid_of(4)
    strategy = CarbonAwareStrategy(FedAvg(fraction_train=0.5), engine(4))
    with caplog.at_level(logging.INFO, logger="flwr.lowcarb"):
        strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=4)
    assert "4 rounds x 2 nodes share evenly among 4 nodes (2 rounds each)" in caplog.text


class PerNode(FedAvg):
    """A strategy that instructs each node differently (lowcarb cannot move those)."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return [
            Message(
                RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": n})}),
                dst_node_id=n,
                message_type=MessageType.TRAIN,
            )
            for n in list(grid.get_node_ids())[:2]
        ]


def test_per_node_instructions_stay_with_their_nodes(caplog: pytest.LogCaptureFixture) -> None:
    grid = grid_of(6)
    strategy = CarbonAwareStrategy(PerNode(fraction_evaluate=0.0), engine(1))
    with caplog.at_level(logging.WARNING, logger="flwr.lowcarb"):
        strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=1)
    assert grid.sent_to("train") == [1000, 1001]
    assert strategy.engine.rounds_done == 0
    assert "instructs each node differently" in caplog.text


def test_the_wrapper_forwards_nothing_and_says_what_it_wraps() -> None:
    strategy = CarbonAwareStrategy(FedAvg(), engine(1))
    assert repr(strategy) == "CarbonAwareStrategy(FedAvg, policy='lowcarb', evaluation='inner')"
    with pytest.raises(AttributeError):
        _ = strategy.weighted_by_key  # type: ignore[attr-defined]


# --- engine_for_run: the Flower way of configuring lowcarb --------------------------------


def server_context(run_id: int, run_config: dict[str, object]) -> Context:
    return Context(
        run_id=run_id, node_id=0, node_config={}, state=RecordDict(), run_config=run_config
    )


def fab_grid(fab_id: str = "acme/greenapp") -> SimpleNamespace:
    return SimpleNamespace(
        run=SimpleNamespace(fab_id=fab_id, fab_version="1.0", fab_hash="ab" * 32)
    )


def test_engine_for_run_reads_the_run_config_and_the_apps_own_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    # Where flwr run installs the App's FAB; the ServerApp runs elsewhere.
    app = get_project_dir("acme/greenapp", "1.0", "ab" * 32)
    app.mkdir(parents=True)
    (app / "lowcarb.toml").write_text('ledger = "runs.db"\n[providers.default]\nseed = 7\n')
    monkeypatch.chdir(tmp_path)
    context = server_context(42, {"lowcarb.policy": "greedy", "lowcarb.fairness": 0.5})
    engine = engine_for_run(context, fab_grid(), rounds=3)  # type: ignore[arg-type]
    assert engine.run_id == "flower/acme/greenapp/42"
    assert engine.policy_name == "greedy" and engine.fairness == 0.5 and engine.rounds == 3
    assert engine.ledger.path == app / "runs.db"
    assert engine.provider.members[0].seed == 7  # type: ignore[attr-defined]
    assert engine.spec.settings is not None
    assert engine.spec.settings.sources["ledger"] == "lowcarb.toml"
    engine.close()
    # The run config outranks the App's file and the environment.
    monkeypatch.setenv("LOWCARB_LEDGER", str(tmp_path / "env.db"))
    context = server_context(43, {"lowcarb.ledger": str(tmp_path / "run.db")})
    engine = engine_for_run(context, fab_grid(), rounds=3)  # type: ignore[arg-type]
    assert engine.ledger.path == tmp_path / "run.db"
    assert engine.spec.settings is not None
    assert engine.spec.settings.sources["ledger"] == "run config"
    engine.close()


def test_separate_flower_runs_are_separate_ledger_runs(tmp_path) -> None:
    ledger = str(tmp_path / "ledger.db")
    first = engine_for_run(server_context(1, {"lowcarb.ledger": ledger}), fab_grid(), rounds=2)  # type: ignore[arg-type]
    first.complete(first.select([Client("a", "DE"), Client("b", "GB")], 1))
    first.close()
    second = engine_for_run(server_context(2, {"lowcarb.ledger": ledger}), fab_grid(), rounds=2)  # type: ignore[arg-type]
    assert not second.resumed and second.rounds_done == 0
    second.close()
    # Continuing is asked for by naming the run.
    again = engine_for_run(
        server_context(3, {"lowcarb.ledger": ledger, "lowcarb.run-id": first.run_id}),
        fab_grid(),  # type: ignore[arg-type]
        rounds=2,
    )
    assert again.resumed and again.rounds_done == 1
    again.close()


def test_bad_lowcarb_run_config_fails_before_the_first_round() -> None:
    with pytest.raises(ConfigurationError, match="lowcarb.polcy"):
        engine_for_run(server_context(1, {"lowcarb.polcy": "greedy"}), fab_grid())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown provider"):
        engine_for_run(server_context(1, {"lowcarb.provider": "electricmaps"}), fab_grid())  # type: ignore[arg-type]
    # A credential in the run config (it travels in the FAB) is refused, naming no value.
    with pytest.raises(ConfigurationError, match="api_key") as info:
        engine_for_run(
            server_context(1, {"lowcarb.providers.electricitymaps.api-key": "s3cr3t"}),
            fab_grid(),  # type: ignore[arg-type]
        )
    assert "s3cr3t" not in str(info.value)

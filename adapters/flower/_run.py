"""An engine configured the Flower way: from the run config and the App's own files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.common.config import get_project_dir
from flwr.serverapp import Grid

from lowcarb import Clock, EngineSpec, SelectionEngine, load_settings
from lowcarb.adapters.flower._client import ZONES_KEY
from lowcarb.exceptions import ConfigurationError

__all__ = ["RUN_CONFIG_PREFIX", "engine_for_run"]

#: Run-config keys under this prefix (``[tool.flwr.app.config.lowcarb]``) configure lowcarb.
RUN_CONFIG_PREFIX = "lowcarb."
_SETTINGS = {"provider": "provider", "fallback": "fallback", "ledger": "ledger"}
_SETTINGS["default-fallback"] = "default_fallback"
_SPEC = {"policy": "policy", "fairness": "fairness", "seed": "seed", "run-id": "run_id"}
_SPEC["unknown-zone"] = "unknown_zone"
#: Where settings given in the run config are said to come from.
ORIGIN = "run config"


def _split(run_config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run config's ``lowcarb.*`` keys as (settings overrides, spec fields)."""
    overrides: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for key, value in run_config.items():
        if not key.startswith(RUN_CONFIG_PREFIX) or key == ZONES_KEY:
            continue
        name = key[len(RUN_CONFIG_PREFIX) :]
        if name in _SETTINGS:
            overrides[_SETTINGS[name]] = value
        elif name in _SPEC:
            fields[_SPEC[name]] = value
        elif name.startswith("providers.") and name.count(".") == 2:
            _, provider, option = name.split(".")
            table = overrides.setdefault("providers", {}).setdefault(provider, {})
            table[option.replace("-", "_")] = value
        else:
            known = sorted([*_SETTINGS, *_SPEC, "providers.<name>.<option>", "zones"])
            raise ConfigurationError(
                f"unknown run-config key {key!r}; lowcarb reads "
                + ", ".join(RUN_CONFIG_PREFIX + k for k in known)
            )
    return overrides, fields


def _app_dir(grid: Grid) -> Path | None:
    """The installed App's directory under ``flwr run`` (None in ``run_simulation``)."""
    try:
        run = grid.run
        directory = get_project_dir(run.fab_id, run.fab_version, run.fab_hash)
    except (AttributeError, ValueError):
        return None  # no FAB: run_simulation, or a test grid
    return directory if directory.is_dir() else None


def engine_for_run(
    context: Context,
    grid: Grid,
    *,
    rounds: int | None = None,
    clock: Clock | None = None,
    **fields: Any,
) -> SelectionEngine:
    """The engine of one Flower run, configured as the App says.

    Settings come, lowest first, from lowcarb's defaults, the App's own ``lowcarb.toml``
    (or ``[tool.lowcarb]`` of its ``pyproject.toml``; under ``flwr run`` the App runs
    from its installed FAB, not from the SuperLink's directory), ``LOWCARB_*``
    variables, the run config's ``lowcarb.*`` keys (``[tool.flwr.app.config]``,
    ``flwr run --run-config``) and the keyword arguments. Credentials come only from
    the environment. The ledger run is named after the Flower run (``flower/<App>/<run
    id>``), so separate runs never share fair shares; name one with ``run_id`` (or
    ``lowcarb.run-id``) to continue it.

    Args:
        context: The ServerApp's Context.
        grid: The ServerApp's Grid (it tells which App runs).
        rounds: Rounds of the training (``num_rounds`` given to ``strategy.start``).
        clock: Time source (default: the wall clock).
        **fields: Other :class:`~lowcarb.EngineSpec` fields (``policy``, ``deadline``, ...).

    Raises:
        ConfigurationError: For a bad setting, before the first round.

    Example:
        >>> engine = engine_for_run(context, grid, rounds=num_rounds)  # doctest: +SKIP
    """
    overrides, configured = _split(context.run_config)
    app_dir = _app_dir(grid)
    settings = load_settings(overrides, origin=ORIGIN, cwd=app_dir)
    run = getattr(getattr(grid, "run", None), "fab_id", "") or ""
    default_id = "/".join(filter(None, ("flower", run, str(context.run_id))))
    spec = EngineSpec.from_settings(
        settings, rounds=rounds, **{"run_id": default_id, **configured, **fields}
    )
    return SelectionEngine(spec=spec, clock=clock)

"""Trace-driven evaluation of selection policies: what ``lowcarb simulate`` runs.

Each policy drives its own :class:`~lowcarb.SelectionEngine` on a simulated clock over
the same carbon trace, clients and initial model; decisions see only what a real run
would, and scores use the true intensities. :class:`FederatedDigits` is the learning
task (federated averaging of a softmax regression on scikit-learn's digits, non-IID);
:func:`sweep` runs many scenarios (windows) in parallel, on Ray if asked, resumably.
This package sits on top of the core and uses only its public API.

Example:
    >>> from lowcarb.simulation import Scenario
    >>> Scenario(clients=20, rounds=24).per_round
    10
"""

from __future__ import annotations

from lowcarb._public import expose
from lowcarb.simulation._learning import FederatedDigits, ModelWeights
from lowcarb.simulation._plots import plot_simulation, require_matplotlib
from lowcarb.simulation._run import (
    DEFAULT_POLICIES,
    DEFAULT_ZONES,
    PolicyResult,
    Scenario,
    SimulationResult,
    simulate,
)
from lowcarb.simulation._sweep import read_results, scenario_key, summarize_sweep, sweep

__all__ = [
    "DEFAULT_POLICIES",
    "DEFAULT_ZONES",
    "FederatedDigits",
    "ModelWeights",
    "PolicyResult",
    "Scenario",
    "SimulationResult",
    "plot_simulation",
    "read_results",
    "require_matplotlib",
    "scenario_key",
    "simulate",
    "summarize_sweep",
    "sweep",
]

expose(globals(), __all__, __name__)

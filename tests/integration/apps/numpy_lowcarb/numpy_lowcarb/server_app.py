"""numpy-lowcarb: the ServerApp; it runs one of the test scenarios and writes what it saw."""

import json
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from numpy_lowcarb.scenarios import SCENARIOS

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the configured scenario (all of them with scenario="all")."""
    name = str(context.run_config["scenario"])
    names = list(SCENARIOS) if name == "all" else [name]
    results = {n: SCENARIOS[n](grid, context) for n in names}
    target = str(context.run_config["result-file"])
    if target:
        Path(target).write_text(json.dumps(results, indent=2, default=str))

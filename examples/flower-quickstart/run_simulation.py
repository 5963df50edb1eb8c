"""Run the quickstart App with `flwr run` in Flower's simulation runtime; write what happened.

Example:
    python examples/flower-quickstart/run_simulation.py --nodes 100 --rounds 10 \
        --policy lowcarb --json lowcarb.json

It does what the guide's `flwr run` recipe does, in a throw-away Flower home: starts a
simulation SuperLink on a free port of 127.0.0.1 (the App runs in this environment: no
per-run dependency installation, no network), submits the App with ``flwr run --stream``
(the run's log is shown as it happens; ``--quiet`` keeps it for errors), and stops the
SuperLink when the run has ended. Flower's deprecated ``run_simulation`` is not used.

``--data FILE --start ISO`` replays real intensities instead of the synthetic default
provider: the ``file`` provider reads FILE (a CSV or Parquet file, or a folder of them; see
docs/providers/file.md), which must cover two weeks before ``--start`` (the forecaster's
look-back) to the end of the last round; with ``--data`` no synthetic fallback is used.

The JSON holds ``policy``, ``rounds``, ``nodes``, ``selected`` (node ids per round),
``zones`` (node id -> zone), ``emissions_kg`` (actual, on the replayed trace),
``random_kg`` (expected emissions of random selection on the same rounds), ``energy_kwh``
(modelled: 70 W for each node's hour-long round, plus the network) and ``accuracy``
(test accuracy of the final model).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # flwr and flower-superlink of this environment
POLICIES = ("random", "lowcarb", "greedy", "lowcarb-2022")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, link: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if link.poll() is not None:
            raise SystemExit("the SuperLink exited before it listened (see its log above)")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"the SuperLink does not listen on 127.0.0.1:{port} after {timeout:.0f} s")


def _stop(link: subprocess.Popen[bytes]) -> None:
    """Stop the SuperLink and what it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(link.pid, sig)
        try:
            link.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _toml(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower()


def simulate(
    nodes: int,
    rounds: int,
    policy: str,
    per_round: int = 10,
    cpus: int = 2,
    *,
    data: Path | None = None,
    start: str | None = None,
    quiet: bool = False,
) -> dict:
    """One simulated training run under ``flwr run``; returns the JSON document."""
    with tempfile.TemporaryDirectory(prefix="flwr-home-") as tmp:
        home = Path(tmp)
        result = home / "result.json"
        config: dict[str, object] = {
            "num-server-rounds": rounds,
            "num-nodes": nodes,
            "nodes-per-round": min(per_round, nodes),
            "policy": policy,
            "result-file": str(result),
        }
        if start is not None:
            config["start"] = start
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "FLWR_HOME": str(home),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        }
        if data is not None:
            # The ServerApp runs in the SuperLink's environment: lowcarb's variables there
            # configure it, as they would in a deployment (docs/flower.md, Configuration).
            env["LOWCARB_PROVIDER"] = "file"
            env["LOWCARB_FILE_PATH"] = str(data.resolve())
            env["LOWCARB_DEFAULT_FALLBACK"] = "false"  # a gap in the data fails, never synthetic
        port = _free_port()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "sim"\n\n[superlink.sim]\naddress = "127.0.0.1:{port}"\n'
            "insecure = true\n"
        )
        log = (home / "superlink.log").open("wb")
        link = subprocess.Popen(
            [
                str(BIN / "flower-superlink"),
                "--insecure",
                "--simulation",
                "--port",
                str(port),
                "--disable-runtime-dependency-installation",
            ],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one at the end
        )
        try:
            _wait_for_port(port, link)
            command = [
                str(BIN / "flwr"),
                "run",
                str(HERE),
                "sim",
                "--stream",
                "--run-config",
                " ".join(f"{key}={_toml(value)}" for key, value in config.items()),
                "--federation-config",
                f"num-supernodes={nodes} client-resources-num-cpus=1 init-args-num-cpus={cpus}",
            ]
            done = subprocess.run(
                command, env=env, cwd=home, capture_output=quiet, text=True, check=False
            )
        finally:
            _stop(link)
            log.close()
        if not result.exists():
            shown = (done.stdout or "") + (done.stderr or "") if quiet else ""
            superlink = (home / "superlink.log").read_text(errors="replace")[-3000:]
            raise SystemExit(
                f"the run ended without a result (flwr run exited {done.returncode})\n"
                f"{shown[-3000:]}\n--- SuperLink log ---\n{superlink}"
            )
        out = json.loads(result.read_text())
    return {"policy": policy, "rounds": rounds, "nodes": nodes, **out}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="simulated nodes (default 100)")
    parser.add_argument("--rounds", type=int, default=10, help="training rounds (default 10)")
    parser.add_argument("--per-round", type=int, default=10, help="nodes per round (default 10)")
    parser.add_argument("--policy", choices=POLICIES, default="lowcarb")
    parser.add_argument("--data", type=Path, help="replay this CSV/Parquet file (file provider)")
    parser.add_argument("--start", help="first round, ISO 8601 UTC (default: the App's start)")
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--quiet", action="store_true", help="show Flower's log only on errors")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.rounds < 1 or args.per_round < 1:
        parser.error("--nodes, --rounds and --per-round must be positive")
    if args.data is not None and not args.data.exists():
        parser.error(f"--data {args.data}: no such file or folder")
    doc = simulate(
        args.nodes,
        args.rounds,
        args.policy,
        args.per_round,
        data=args.data,
        start=args.start,
        quiet=args.quiet,
    )
    text = json.dumps(doc, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(
        f"{args.policy}: {doc['emissions_kg']:.3f} kg CO2eq "
        f"(random expectation {doc['random_kg']:.3f} kg), {doc['energy_kwh']:.2f} kWh "
        f"modelled, accuracy {doc['accuracy']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

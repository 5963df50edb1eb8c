"""Start and stop `lowcarb disco serve` on loopback for the interop tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).parent / "node"
EXAMPLES = REPO / "examples" / "disco"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Bridge:
    """A `lowcarb disco serve` process."""

    url: str
    state_dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    handle: BinaryIO

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()
        return self.log.read_text()


#: The bridge's clock in the interop runs: decisions are then the same run after run.
NOW = "2025-03-03T09:00Z"


def start_bridge(tasks: Path, state_dir: Path, protocol: str = "v2", *extra: str) -> Bridge:
    """Start the bridge on a free loopback port, its clock at :data:`NOW`; wait until it answers."""
    port = free_port()
    log = state_dir / "bridge.log"
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOWCARB_")}
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lowcarb",
            "--now",
            NOW,
            "disco",
            "serve",
            "--tasks",
            str(tasks),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--protocol",
            protocol,
            "--state-dir",
            str(state_dir),
            "--provider",
            "default",
            *extra,
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):  # start-up, not a timed assertion
        if process.poll() is not None:
            handle.close()
            raise RuntimeError(f"the bridge exited: {log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return Bridge(url, state_dir, process, log, handle)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    handle.close()
    raise RuntimeError(f"the bridge did not start: {log.read_text()}")

"""A multi-node Ray cluster on 127.0.0.1 for tests, started with ``ray start`` as on real
machines: a head (0 CPUs) and nodes, each with its own temp folder (its session, logs and
sockets: nothing shared between nodes but what Ray sends over the network), token
authentication on (``RAY_AUTH_MODE=token`` with a token of its own, as ``ray start --head``
does when ``~/.ray/auth_token`` exists). Results go to object storage.

:meth:`RayNodes.kill_node` takes a node away as a lost machine would (SIGKILL of its
processes); :meth:`RayNodes.close` ends every process of the cluster by its pid, never by
name (``ray stop`` would end every Ray on the machine).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phantom.testing.s3 import free_port


class RayNodes:
    """``workers`` nodes of ``cpus`` CPUs each beside a head of ``head_cpus`` (0: the head runs
    no trials, as on a cluster; a one-machine Ray kept between sweeps: ``RayNodes(0, head_cpus=N)``)."""

    def __init__(self, workers: int = 2, cpus: int = 1, env: dict[str, str] | None = None,
                 head_cpus: int = 0) -> None:
        self.node_env = dict(env or {})  # what every node has in its environment (storage settings)
        self.root = Path(tempfile.mkdtemp(prefix="phantom-nodes-"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.workers, self.cpus, self.head_cpus = workers, cpus, head_cpus
        self.ray = str(Path(sys.executable).with_name("ray"))

    @property
    def env(self) -> dict[str, str]:
        """What a node or a driver of this cluster needs (the token; HOME of its own, so no
        ``~/.ray/auth_token`` of the machine is read)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0",
                "HOME": str(self.root / "home")}

    def _start(self, name: str, *args: str) -> None:
        env = {**os.environ, **self.node_env, **self.env}
        (self.root / "home").mkdir(exist_ok=True)
        subprocess.run([self.ray, "start", "--node-ip-address", "127.0.0.1", "--temp-dir", str(self.root / name),
                        "--disable-usage-stats", *args], env=env, check=True, capture_output=True, timeout=120)

    def start(self) -> RayNodes:
        self._start("head", "--head", "--port", str(self.port), "--num-cpus", str(self.head_cpus),
                    "--include-dashboard", "false")
        for i in range(self.workers):
            self._start(f"node-{i + 1}", "--address", self.address, "--num-cpus", str(self.cpus))
        return self

    def pids(self, node: str | None = None) -> list[int]:
        """The processes of the cluster (of one node's temp folder, when named)."""
        mark = str(self.root / node) if node else str(self.root)
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if mark in cmdline:
                out.append(int(entry))
        return out

    def kill_node(self, node: str) -> None:
        """The node is lost: its raylet and workers SIGKILLed."""
        for pid in self.pids(node):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        for _ in range(3):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> RayNodes:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

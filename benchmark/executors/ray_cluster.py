"""A Ray cluster of one's own on this machine (tests, benchmarks): it starts and stops only its own processes.

:class:`LocalRayCluster` starts a head and worker nodes on 127.0.0.1 with ``ray start --block``, each in its own
session, in a temporary directory of its own (``--temp-dir``, and a ``HOME`` of its own, so that neither the
user's ``~/.ray`` nor a token file in it is read or written), on free ports it picked itself (never Ray's fixed
defaults, 6379, 10001, 52365, which a user's own cluster may hold), with token authentication and a fresh
random token passed in the environment (Ray ≥ 2.60 reads ``RAY_AUTH_MODE`` and ``RAY_AUTH_TOKEN``). It stops
the processes it started, by their PIDs (each ``ray start`` process, its descendants, and any process whose
command line names its temporary directory), never with ``ray stop``, which stops every Ray process on the
host. A node that cannot start raises :class:`RayStartError` with Ray's own output.

:func:`driver_env` gives this process (the driver) the cluster's authentication settings while it is connected,
and restores the previous ones afterwards.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
STARTED = "Ray runtime started."  # what `ray start` prints once its node runs
MIB = 1024 * 1024


class RayStartError(RuntimeError):
    """A node of a :class:`LocalRayCluster` did not start: the message holds Ray's own output."""


def ray_cli() -> str | None:
    """The ``ray`` command of this Python environment (else the one on ``PATH``), or None."""
    return shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refresh_ray_auth() -> None:
    """Make this process's Ray read the authentication variables again (its configuration and token are cached)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication: nothing is cached
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def environ(values: dict[str, str | None]):
    """``os.environ`` with ``values`` set (None: removed) inside, as it was afterwards; Ray's cached
    authentication settings follow it both ways."""
    before = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        refresh_ray_auth()
        yield
    finally:
        for k, v in before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        refresh_ray_auth()


class LocalRayCluster:
    """A head and ``nodes - 1`` worker nodes on 127.0.0.1, ``num_cpus`` each; a context manager that stops them."""

    def __init__(self, nodes: int = 2, *, num_cpus: int = 1, object_store_memory: int = 80 * MIB,
                 timeout: float = 180.0):
        self.ray = ray_cli()
        if self.ray is None:
            raise RayStartError("the ray command is not installed (pip install -e '.[ray]')")
        self.nodes, self.num_cpus, self.memory, self.timeout = nodes, num_cpus, object_store_memory, timeout
        # short: Ray's socket paths (<temp>/session_<date>_<pid>/sockets/...) must stay under 108 characters
        self.root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.home = self.root / "home"
        self.home.mkdir()
        self.token = secrets.token_hex(32)
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_AUTH_TOKEN_PATH": None}
        self.env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS and k != "RAY_ADDRESS"}
        # the user's caches stay where they are (torch hub, pyiqa and Hugging Face weights): only ~/.ray moves
        self.env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        self.env.update({"HOME": str(self.home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,
                         "RAY_USAGE_STATS_ENABLED": "0"})
        self.procs: list[subprocess.Popen] = []
        self.address: str | None = None

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> str:
        """Start every node; returns the head's address (``127.0.0.1:PORT``)."""
        try:
            self.address = f"127.0.0.1:{free_port()}"
            for i in range(self.nodes):
                self._start_node(i)
        except BaseException:
            self.stop()
            raise
        return self.address

    def _start_node(self, i: int) -> None:
        head = i == 0
        ports = {"node-manager-port": free_port(), "object-manager-port": free_port(),
                 "dashboard-agent-listen-port": free_port(), "dashboard-agent-grpc-port": free_port(),
                 "runtime-env-agent-port": free_port(), "metrics-export-port": free_port()}
        if head:
            ports.update({"port": int(self.address.rsplit(":", 1)[1]), "ray-client-server-port": free_port()})
        role = ["--head", "--include-dashboard=false"] if head else [f"--address={self.address}"]
        cmd = [self.ray, "start", "--block", *role, f"--temp-dir={self.root / 'tmp'}", "--node-ip-address=127.0.0.1",
               f"--num-cpus={self.num_cpus}", f"--object-store-memory={self.memory}", "--disable-usage-stats",
               *(f"--{k}={v}" for k, v in ports.items())]
        log_path = self.root / f"node{i}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + self.timeout
        while STARTED not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with status {proc.returncode}" if proc.returncode is not None else \
                    f"did not start within {self.timeout:.0f} s"
                raise RayStartError(f"`{' '.join(cmd)}` {why}; Ray's output:\n{self._output(log_path)}")
            time.sleep(0.2)

    def _output(self, log_path: Path, lines: int = 40) -> str:
        """The tail of a node's ``ray start`` output and of the raylet's and GCS's error logs."""
        parts = [log_path, *sorted((self.root / "tmp").glob("session_*/logs/raylet*.err")),
                 *sorted((self.root / "tmp").glob("session_*/logs/gcs_server*.err"))]
        out = []
        for p in parts:
            text = p.read_text(errors="replace").strip().splitlines()[-lines:] if p.is_file() else []
            if text:
                out.append(f"--- {p}\n" + "\n".join(text))
        return "\n".join(out) or "(none)"

    # -- stop -----------------------------------------------------------------------------------
    def pids(self) -> set[int]:
        """The processes this cluster started: each ``ray start``, its descendants, and any process whose command
        line names this cluster's temporary directory (a Ray process that left its parent)."""
        import psutil

        found: set[int] = set()
        for proc in self.procs:
            try:
                p = psutil.Process(proc.pid)
                found |= {p.pid, *(c.pid for c in p.children(recursive=True))}
            except psutil.NoSuchProcess:
                pass
        root = str(self.root)
        for p in psutil.process_iter(["cmdline"]):
            try:
                if p.pid != os.getpid() and any(root in a for a in (p.info["cmdline"] or ())):
                    found.add(p.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def stop(self, grace: float = 15.0) -> None:
        """Stop this cluster's processes (SIGTERM, then SIGKILL after ``grace`` seconds) and remove its directory."""
        import psutil

        procs = []
        for pid in self.pids():
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=grace)
        for proc in self.procs:  # reap the `ray start` processes this one started
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:  # pragma: no cover - killed above
                pass
        self.procs = []
        shutil.rmtree(self.root, ignore_errors=True)

    def driver_env(self):
        """This process's environment for connecting to the cluster as a driver (its token), restored after."""
        return environ(self.auth)

    def __enter__(self) -> "LocalRayCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

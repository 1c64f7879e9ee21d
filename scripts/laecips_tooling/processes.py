"""Child processes on loopback: a ProcessGroup that always cleans up, free ports, per-process ROS 2 env."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from laecips_core.errors import ConfigError


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on `host` a moment ago (bind to port 0, read it, close).

    Args:
        host: loopback address to probe.

    Returns:
        A port number in the ephemeral range; another process may still grab it, so start the
        listener soon after.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def zenoh_endpoint(port: int) -> str:
    """Return the explicit loopback Zenoh endpoint for `port` (``tcp/127.0.0.1:<port>``)."""
    return f"tcp/127.0.0.1:{port}"


def random_domain_id() -> int:
    """Return a ROS_DOMAIN_ID in 1..100 chosen at random, so parallel tests do not cross."""
    return random.SystemRandom().randint(1, 100)


def ros_env(domain_id: int | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a copy of os.environ for a ROS 2 child process on loopback with its own domain.

    Args:
        domain_id: ROS_DOMAIN_ID to use; a fresh random one when None.
        extra: more variables to set (override the copy).

    Returns:
        Environment dict with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID, unbuffered
        Python output and no hub access.
    """
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_STATIC_PEERS", None)
    env["ROS_DOMAIN_ID"] = str(random_domain_id() if domain_id is None else domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("RUST_LOG", "warn")
    env.setdefault("OMP_NUM_THREADS", "1")
    if extra:
        env.update(extra)
    return env


def wait_until(predicate: Callable[[], bool], timeout_s: float, period_s: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout_s` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(period_s)


@dataclass
class ManagedProcess:
    """One child process of a ProcessGroup; stdout and stderr go to one log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)

    def log(self) -> str:
        """Return everything the process wrote so far (stdout and stderr, decoded leniently)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.popen.poll() is None

    def wait_for_log(self, pattern: str, timeout_s: float) -> re.Match[str] | None:
        """Wait until the log matches the regular expression `pattern`; None on timeout or exit."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = regex.search(self.log())
            if match:
                return match
            if not self.alive():
                return regex.search(self.log())
            time.sleep(0.1)
        return None


class ProcessGroup:
    """Start child processes, each in its own session, and kill all of them on exit.

    Use as a context manager; every process is stopped with SIGINT, then SIGKILL after a grace
    period, whatever happens in the body (test failures included)::

        with ProcessGroup(tmp_path, timeout_s=120) as group:
            edge = group.start("edge", [sys.executable, "-m", "laecips_edge.edge_node"], env=ros_env(7))

    Args:
        log_dir: folder for the per-process log files.
        timeout_s: hard limit on the group's lifetime (seconds); a process still running past it
            is killed at the next `check_timeout()` or on exit.
        grace_s: seconds between SIGINT and SIGKILL when stopping.
        cwd: working directory of the children; this process's when None.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        timeout_s: float = 300.0,
        grace_s: float = 5.0,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.cwd = Path(cwd) if cwd is not None else None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.timeout_s = float(timeout_s)
        self.grace_s = float(grace_s)
        self.started_at = time.monotonic()
        self.procs: dict[str, ManagedProcess] = {}

    def __enter__(self) -> ProcessGroup:
        self.started_at = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> ManagedProcess:
        """Start `argv` as a new session (own process group) with output to `<log_dir>/<name>.log`.

        Args:
            name: unique name (a restarted process reuses its name; the old one must be stopped).
            argv: command line.
            env: environment; `ros_env()` when None.
            cwd: working directory; the group's `cwd` when None.

        Returns:
            The ManagedProcess.
        """
        old = self.procs.get(name)
        if old is not None and old.alive():
            raise ConfigError(f"process {name!r} is still running; stop it before starting it again")
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else ros_env(),
                cwd=str(cwd) if cwd is not None else (str(self.cwd) if self.cwd is not None else None),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = ManagedProcess(name=name, popen=popen, log_path=log_path, argv=list(argv))
        self.procs[name] = proc
        return proc

    def start_python(
        self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """Start this interpreter with `args` (e.g. ``["-m", "laecips_edge.edge_node", ...]``)."""
        return self.start(name, [sys.executable, *args], env=env)

    def stop(self, name: str, sig: int = signal.SIGINT) -> int | None:
        """Stop one process: `sig` to its whole group, SIGKILL after the grace period; return its code."""
        proc = self.procs[name]
        return _stop_group(proc.popen, sig, self.grace_s)

    def kill(self, name: str) -> int | None:
        """SIGKILL one process group at once (an abrupt crash, e.g. the cloud going down)."""
        return _stop_group(self.procs[name].popen, signal.SIGKILL, self.grace_s)

    def check_timeout(self) -> None:
        """Raise TimeoutError (after killing everything) when the group outlived `timeout_s`."""
        if time.monotonic() - self.started_at > self.timeout_s:
            self.stop_all()
            raise TimeoutError(f"process group exceeded {self.timeout_s:.0f} s; all processes were stopped")

    def stop_all(self) -> None:
        """Stop every process (SIGINT, then SIGKILL after the grace period), newest first."""
        for proc in reversed(list(self.procs.values())):
            _stop_group(proc.popen, signal.SIGINT, self.grace_s)

    def logs(self) -> str:
        """Return all logs, each under a ``==== name ====`` line (for assertion messages)."""
        return "\n".join(f"==== {p.name} ====\n{p.log()[-4000:]}" for p in self.procs.values())


def _stop_group(popen: subprocess.Popen[bytes], sig: int, grace_s: float) -> int | None:
    """Send `sig` to the process group of `popen`, wait `grace_s`, then SIGKILL; reap it."""
    if popen.poll() is not None:
        _kill_pgid(popen.pid, signal.SIGKILL)  # children left behind by a dead leader
        return popen.returncode
    _kill_pgid(popen.pid, sig)
    try:
        popen.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _kill_pgid(popen.pid, signal.SIGKILL)
    try:
        return popen.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        return None


def _kill_pgid(pgid: int, sig: int) -> None:
    """Signal the process group `pgid`; a group that is gone already is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def process_group(
    log_dir: str | os.PathLike[str],
    timeout_s: float = 300.0,
    grace_s: float = 5.0,
    cwd: str | os.PathLike[str] | None = None,
) -> Iterator[ProcessGroup]:
    """Functional form of ProcessGroup (same arguments)."""
    group = ProcessGroup(log_dir, timeout_s=timeout_s, grace_s=grace_s, cwd=cwd)
    try:
        yield group
    finally:
        group.stop_all()

"""The robot's WLAN for tests: edge and cloud network namespaces joined by a veth pair shaped by tbf.

This kernel has no sch_netem (see ../shared/notes/platform.md), so rate is the kernel's token bucket
(``tc qdisc ... tbf``, 4 Mbit/s, 16 KB burst, 200 ms queue, each direction) and an outage is a token bucket
whose bucket (10 bytes) is smaller than any packet: every frame is dropped silently in both directions,
the link and the addresses stay up, nobody sends a FIN or RST -- what a robot sees when it drives out of
WLAN range. Needs root and ``ip``/``tc``; namespaces get unique names and are always deleted.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess

SHAPE = ("rate", "4mbit", "burst", "16kb", "latency", "200ms")
BLACKHOLE = ("rate", "8kbit", "burst", "10", "limit", "10")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=20)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None when they can): not root, no ip/tc, or the kernel refuses."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "`ip` and `tc` (iproute2) are not installed"
    name = f"lwprobe{os.getpid()}"
    try:
        _run("ip", "netns", "add", name)
    except (subprocess.SubprocessError, OSError) as err:
        return f"`ip netns add` is not available here: {getattr(err, 'stderr', '') or err}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
    return None


class WlanLink:
    """Two namespaces, ``<name>e`` (edge, 10.a.b.1) and ``<name>c`` (cloud, 10.a.b.2), and one shaped veth.

    Use as a context manager; exit kills what still runs inside them and deletes both.
    """

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}{random.SystemRandom().randint(0, 99)}"
        self.edge_ns, self.cloud_ns = f"lw{tag}e", f"lw{tag}c"
        self.edge_if, self.cloud_if = f"lv{tag}e", f"lv{tag}c"
        a, b = random.SystemRandom().randint(100, 250), random.SystemRandom().randint(0, 255)
        self.edge_ip, self.cloud_ip = f"10.{a}.{b}.1", f"10.{a}.{b}.2"
        self.outage = False

    def __enter__(self) -> WlanLink:
        try:
            _run("ip", "netns", "add", self.edge_ns)
            _run("ip", "netns", "add", self.cloud_ns)
            _run("ip", "link", "add", self.edge_if, "type", "veth", "peer", "name", self.cloud_if)
            for ns, dev, ip in (
                (self.edge_ns, self.edge_if, self.edge_ip),
                (self.cloud_ns, self.cloud_if, self.cloud_ip),
            ):
                _run("ip", "link", "set", dev, "netns", ns)
                _run("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                _run("ip", "-n", ns, "link", "set", dev, "up")
                _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", *SHAPE)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exec_prefix(self, side: str) -> list[str]:
        """argv prefix running a command inside the "edge" or "cloud" namespace (ip netns exec execs it)."""
        return ["ip", "netns", "exec", self.edge_ns if side == "edge" else self.cloud_ns]

    def set_outage(self, on: bool) -> None:
        """Drop every packet both ways (on) or restore the 4 Mbit/s link (off)."""
        params = BLACKHOLE if on else SHAPE
        for ns, dev in ((self.edge_ns, self.edge_if), (self.cloud_ns, self.cloud_if)):
            _run("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", *params)
        self.outage = on

    def qdisc_stats(self) -> str:
        """``tc -s qdisc`` of both ends (sent, dropped, overlimits), for failure messages."""
        out = []
        for ns, dev in ((self.edge_ns, self.edge_if), (self.cloud_ns, self.cloud_if)):
            res = subprocess.run(["ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", dev],
                                 capture_output=True, text=True, timeout=20)  # fmt: skip
            out.append(f"{ns}/{dev}: {res.stdout.strip()}")
        return "\n".join(out)

    def close(self) -> None:
        """Kill processes left in the namespaces, then delete them (the veth pair goes with them)."""
        for ns in (self.edge_ns, self.cloud_ns):
            res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=20)
            for pid in res.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)

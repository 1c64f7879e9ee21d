"""Cloud throughput of F(x) (f + the default CPU LVM + Algorithm 1) when 1, 2 and 4 robots send at once.

The real path: a ``CloudService`` (services/cloud_service.py) in its own process, one Zenoh peer per
robot in its own process sending hard frames through ``CloudClient`` (transport/client.py) closed-loop
(the next frame when the previous reply came), all on 127.0.0.1 with explicit endpoints, multicast and
gossip scouting off, shared memory off. Keys: ``cloud_frames_per_s`` (1 robot), ``cloud_frames_per_s_2``
and ``cloud_frames_per_s_4``; the notes give the per-robot counts (no robot starved = every robot got
at least half the mean). The same serve/send processes run inside network namespaces in bench_link.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_fusion import entry, load_note, print_entries

HERE = Path(__file__).resolve()
FRAME_SIZE = (480, 640)
"""(H, W) of the frames the robots send (the edge camera's size in the demo)."""
STARVED_SHARE = 0.5
"""A robot whose count is below this share of the mean count is reported as starved."""


def zenoh_file(path: Path, *, listen: list[str] | None = None, connect: list[str] | None = None) -> str:
    """A json5 Zenoh config: peer, no multicast or gossip scouting, no shared memory, 3 s lease."""
    config: dict[str, Any] = {
        "mode": "peer",
        "scouting": {"multicast": {"enabled": False}, "gossip": {"enabled": False}},
        "transport": {"link": {"tx": {"lease": 3000}}, "shared_memory": {"enabled": False}},
    }
    if listen:
        config["listen"] = {"endpoints": listen}
    if connect:
        config["connect"] = {"endpoints": connect, "retry": {"period_init_ms": 100, "period_max_ms": 500}}
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def find_bundle() -> tuple[Path, str]:
    """The f to fuse with: the default profile if cached for this code, else the newest cached default
    bundle of an earlier code version, else the "test" profile (trained in < ~30 s); and which it is."""
    from laecips_core.training import weights_cache
    from laecips_core.training.pretraining import ensure_default_weights
    from laecips_core.training.profiles import get_profile

    cache = weights_cache.default_cache_dir()
    key = weights_cache.profile_key(get_profile("default"))
    exact = cache / f"laecips-default-{key[:12]}.safetensors"
    if weights_cache.is_cached(exact, weights_cache.card_path(exact), key):
        return exact, f"default f ({exact.name})"
    older = sorted(cache.glob("laecips-default-*.safetensors"), key=lambda p: p.stat().st_mtime)
    if older:
        return older[-1], f"default f of an earlier code version ({older[-1].name}; not cached for this code)"
    path = ensure_default_weights(profile="test", progress=False)
    return path, f"test-profile f ({path.name}; no default weights cached)"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_frames(count: int, height: int = FRAME_SIZE[0], width: int = FRAME_SIZE[1]) -> list[Any]:
    """``count`` benchmark frames (generator.Frame: image, labels) spread over the 5 tasks."""
    from laecips_core.benchmark import generator

    cfg = generator.BenchmarkConfig(seed=11, frames_per_task=20, width=width, height=height)
    indices = np.linspace(0, cfg.num_frames - 1, count).round().astype(int)
    return [generator.generate_frame(cfg, int(i)) for i in indices]


def serve(args: argparse.Namespace) -> int:
    """Run a CloudService for ``args.seconds`` (prints "ready" once its queryables are declared)."""
    from laecips_core.services.cloud_config import CloudConfig
    from laecips_core.services.cloud_service import CloudService
    from laecips_core.storage.bundle_loading import read_bundle_metadata
    from laecips_core.transport import load_zenoh_config, open_session

    work = Path(args.workdir)
    meta = read_bundle_metadata(args.bundle)
    height, width = json.loads(meta.get("input_size", "[0, 0]"))  # f runs at the edge's input size
    cfg = CloudConfig(
        robot_ids=tuple(args.robots.split(",")),
        zenoh_config=zenoh_file(work / "cloud.json5", listen=[args.endpoint]),
        edge_model_name=meta.get("model_name", ""),
        edge_model_path=args.bundle,
        weights_dir=str(work / "weights"),
        replay_dir=str(work / "replay"),
        input_height=int(height),
        input_width=int(width),
        allow_unsigned_weights=True,
        queue_size=4,
    ).validate()
    session = open_session(load_zenoh_config(cfg.zenoh_config))
    service = CloudService(cfg, session, logging.getLogger("bench-cloud"))
    service.start()
    print("ready", flush=True)
    try:
        time.sleep(args.seconds)
    finally:
        service.stop()
        session.close()
    return 0


def send(args: argparse.Namespace) -> int:
    """Send hard frames closed-loop for ``args.seconds`` (at most ``args.count``); print a JSON summary."""
    from laecips_core.transport import CloudClient, InferRequest, load_zenoh_config, open_session

    from laecips_core import image_codecs

    frames = [f.image for f in test_frames(3)]
    jpegs = [image_codecs.encode_jpeg(rgb, quality=args.quality) for rgb in frames]
    work = Path(args.workdir)
    config = zenoh_file(work / f"{args.robot}.json5", connect=[args.endpoint])
    session = open_session(load_zenoh_config(config))
    client = CloudClient(session, args.robot, timeout_s=30.0)
    totals, cloud_s, up, down, ok = [], [], [], [], 0
    try:
        ready_by = time.monotonic() + 15.0  # wait for the cloud's queryable (bounded)
        while not client.available() and time.monotonic() < ready_by:
            time.sleep(0.05)
        time.sleep(args.start_at - time.time() if args.start_at > time.time() else 0.0)
        end = time.monotonic() + args.seconds
        for frame_id in range(args.count):
            if time.monotonic() >= end:
                break
            start = time.perf_counter()
            jpeg = jpegs[frame_id % len(jpegs)]
            height, width = frames[0].shape[:2]
            request = InferRequest(args.robot, frame_id, time.time(), 0, args.classes, width, height, jpeg)
            payload, attachment = request.encode()
            reply = client.infer(request)
            totals.append(time.perf_counter() - start)
            if reply.ok:
                ok += 1
                cloud_s.append(reply.cloud_s)
                up.append(len(payload) + len(attachment))
                down.append(reply.payload_bytes)
    finally:
        client.close()
        session.close()
    summary = {
        "robot": args.robot,
        "ok": ok,
        "sent": len(totals),
        "total_s": totals,
        "cloud_s": cloud_s,
        "up_bytes": float(np.median(up)) if up else 0.0,
        "down_bytes": float(np.median(down)) if down else 0.0,
    }
    print("RESULT " + json.dumps(summary), flush=True)
    return 0


def script_argv(*args: str) -> list[str]:
    """argv running this file with ``args`` under the current interpreter."""
    return [sys.executable, str(HERE), *args]


def run_cloud_and_robots(
    workdir: Path,
    bundle: Path,
    robots: list[str],
    seconds: float,
    *,
    listen: str,
    connect: str,
    classes: int,
    quality: int = 75,
    cloud_prefix: tuple[str, ...] = (),
    robot_prefix: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Start the cloud process, then one sender per robot at the same instant; their JSON summaries.

    The prefixes (e.g. ``ip netns exec NS``) put the processes into network namespaces; every
    process is bounded in time and killed if it outlives its bound.
    """
    cloud_seconds = seconds + 60.0
    common = ["--workdir", str(workdir), "--classes", str(classes), "--quality", str(quality)]
    serve_args = ["--serve", "--bundle", str(bundle), "--robots", ",".join(robots), "--endpoint", listen]
    cloud_argv = [*cloud_prefix, *script_argv(*serve_args, "--seconds", str(cloud_seconds), *common)]
    cloud = subprocess.Popen(cloud_argv, stdout=subprocess.PIPE, text=True)
    try:
        assert cloud.stdout is not None
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and cloud.poll() is None:
            if cloud.stdout.readline().strip() == "ready":
                break
        if cloud.poll() is not None:
            raise RuntimeError(f"the cloud process exited with {cloud.returncode} before it was ready")
        start_at = time.time() + 8.0  # senders import and connect first, then all start together
        send_args = ["--send", "--endpoint", connect, "--seconds", str(seconds), "--start-at", str(start_at)]
        senders = [
            subprocess.Popen(
                [*robot_prefix, *script_argv(*send_args, "--robot", robot, *common)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for robot in robots
        ]
        results = []
        for sender in senders:
            out, _ = sender.communicate(timeout=seconds + 120.0)
            lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
            if not lines:
                raise RuntimeError(f"a sender exited with {sender.returncode} without a result")
            results.append(json.loads(lines[-1][len("RESULT ") :]))
        return results
    finally:
        cloud.terminate()
        try:
            cloud.wait(timeout=15.0)
        except subprocess.TimeoutExpired:
            cloud.kill()
            cloud.wait(timeout=15.0)


def throughput(results: list[dict[str, Any]], seconds: float) -> tuple[float, list[int], bool]:
    """(frames/s over all robots, per-robot ok counts, starved) from the senders' summaries."""
    counts = [int(r["ok"]) for r in results]
    mean = sum(counts) / max(len(counts), 1)
    starved = any(c < STARVED_SHARE * mean for c in counts) or mean == 0
    return sum(counts) / seconds, counts, starved


def entries(quick: bool = False) -> dict[str, dict]:
    """The cloud keys of runs/bench/bench.json (see the module docstring)."""
    from laecips_core.lvm.registry import DEFAULT_LVM
    from laecips_core.storage.bundle_loading import read_bundle_metadata

    bundle, which = find_bundle()
    classes = int(read_bundle_metadata(bundle).get("num_classes", "0") or 0)
    seconds = 8.0 if quick else 20.0
    out = {}
    for n in (1, 2, 4):
        robots = [f"robot{i + 1}" for i in range(n)]
        endpoint = f"tcp/127.0.0.1:{free_port()}"
        with tempfile.TemporaryDirectory(prefix="bench-cloud-") as tmp:
            try:
                results = run_cloud_and_robots(
                    Path(tmp), bundle, robots, seconds, listen=endpoint, connect=endpoint, classes=classes
                )
            except (RuntimeError, subprocess.SubprocessError, OSError) as err:
                out[_key(n)] = entry(None, None, "frames/s", True, f"not measured: {err}")
                continue
        rate, counts, starved = throughput(results, seconds)
        cloud_ms = np.median([s for r in results for s in r["cloud_s"]] or [np.nan]) * 1e3
        note = (
            f"{n} robot(s) closed-loop for {seconds:.0f} s, {FRAME_SIZE[1]}x{FRAME_SIZE[0]} JPEG q75, "
            f"LVM {DEFAULT_LVM!r}, 1 cloud worker, {which}; per-robot replies {counts}"
            f"{' (a robot STARVED)' if starved else ' (none starved)'}; "
            f"median cloud time (arrival to reply) {cloud_ms:.0f} ms; "
            f"{load_note()}"
        )
        out[_key(n)] = entry(rate, None, "frames/s", True, note)
    return out


def _key(robots: int) -> str:
    return "cloud_frames_per_s" if robots == 1 else f"cloud_frames_per_s_{robots}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options of the bench and of its --serve / --send helper processes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true", help="(helper) run the cloud")
    parser.add_argument("--send", action="store_true", help="(helper) run one robot's sender")
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--bundle", default="")
    parser.add_argument("--robots", default="robot1")
    parser.add_argument("--robot", default="robot1")
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=10_000, help="most frames a sender sends")
    parser.add_argument("--start-at", type=float, default=0.0, help="(sender) wall-clock start time")
    parser.add_argument("--classes", type=int, default=0)
    parser.add_argument("--quality", type=int, default=75)
    return parser.parse_args([] if argv is None else argv)


def main(argv: list[str] | None = None) -> int:
    """Print the cloud throughput entries (or run a helper process); returns 0."""
    args = parse_args(argv)
    if args.serve:
        return serve(args)
    if args.send:
        return send(args)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print_entries(entries(args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

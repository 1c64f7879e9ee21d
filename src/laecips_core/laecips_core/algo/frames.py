"""What f and h give for one camera frame (EdgeResult), and the numpy steps around the two networks.

Torch-free on purpose: the lean edge (``onnx_predictor``, backend onnxruntime) runs f and h through ONNX
Runtime and does everything else here, so a robot needs no torch. The torch predictor uses the same
helpers where they are as fast (the input table, the argmax), so both give the same labels.

- ``normalise``: uint8 RGB -> f's input x (ImageNet mean and std, ``normalisation``), by table lookup.
- ``resize``: (B,C,H,W) planes to another size, as torch's ``F.interpolate`` does it (bilinear with or
  without antialiasing, area averaging): the working size of f and h's input size.
- ``argmax_labels``: the labels of F's edge side, argmax over f's scores.
- ``softmax``: f's per-class probabilities, the "pred" of Algorithm 1.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from laecips_core.algo.model_constants import IMAGENET_MEAN, IMAGENET_STD
from laecips_core.errors import ConfigError, ImageError
from laecips_core.image_arrays import bilinear_taps, check_rgb

DEFAULT_STREAM_NORM_PRIOR = 16.0
"""N: the stored statistics weigh as N frames against the current one (0 = stored statistics only)."""

RESIZE_MODES = ("bilinear", "bilinear_aa", "area")
"""``resize`` modes: F.interpolate bilinear (align_corners=False), the same with antialias=True, area."""


def check_prior(prior: float) -> float:
    """Validate N of ``streamnorm`` (a finite number >= 0) and return it as a float.

    Raises:
        ConfigError: negative, NaN or infinite.
    """
    try:
        value = float(prior)
    except (TypeError, ValueError):
        raise ConfigError(f"stream_norm_prior must be a number >= 0, got {prior!r}") from None
    if not value >= 0.0 or value == float("inf"):
        raise ConfigError(
            f"stream_norm_prior must be a finite number >= 0 (0 = stored BatchNorm statistics only), "
            f"got {prior!r}"
        )
    return value


def check_image(rgb: object) -> np.ndarray:
    """The frame itself when it is an (H,W,3) uint8 RGB image (``check_rgb``) of at least 8x8 pixels.

    Raises:
        ImageError: anything else (the message says what was given).
    """
    frame = check_rgb(rgb, "the edge predictor's frame")  # type: ignore[arg-type]
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ImageError(f"image {frame.shape[1]}x{frame.shape[0]} is too small (at least 8x8 pixels)")
    return frame


@functools.cache
def _input_table() -> np.ndarray:
    """(3,256) float32: f's input value of every byte per channel, computed as ``models.preprocess`` does."""
    ramp = np.arange(256, dtype=np.float32)[None, :]
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None] * np.float32(255.0)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)[:, None] * np.float32(255.0)
    return np.ascontiguousarray((ramp - mean) / std, dtype=np.float32)


def normalise(rgb: np.ndarray) -> np.ndarray:
    """(B,H,W,3) uint8 RGB -> (B,3,H,W) float32 input of f, the values ``models.preprocess`` gives.

    Each pixel is looked up in a 3 x 256 table instead of a float conversion and two full-image passes.
    """
    table = _input_table()
    out = np.empty((rgb.shape[0], 3, rgb.shape[1], rgb.shape[2]), dtype=np.float32)
    for c in range(3):
        out[:, c] = table[c][rgb[..., c]]
    return out


# ------------------------------------------------------------------------------------------ resizing


def _aa_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) rows of torch's antialiased bilinear filter (a triangle widened by the scale)."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        taps = np.arange(lo, hi, dtype=np.float64)
        inv = 1.0 / scale if scale >= 1.0 else 1.0
        w = np.clip(1.0 - np.abs((taps - center + 0.5) * inv), 0.0, None)
        total = w.sum()
        matrix[i, lo:hi] = w / total if total > 0 else 0.0
    return matrix


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) rows of adaptive average pooling (torch's mode="area")."""
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        lo = (i * n_in) // n_out
        hi = -((-(i + 1) * n_in) // n_out)
        matrix[i, lo:hi] = 1.0 / (hi - lo)
    return matrix


@functools.lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int, mode: str) -> np.ndarray:
    matrix = _area_weights(n_in, n_out) if mode == "area" else _aa_weights(n_in, n_out)
    return np.ascontiguousarray(matrix, dtype=np.float32)


_cached_taps = functools.lru_cache(maxsize=64)(bilinear_taps)


def _bilinear_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    low, high, frac = _cached_taps(x.shape[axis], n_out)
    shape = [1] * x.ndim
    shape[axis] = n_out
    frac_b = frac.reshape(shape)
    a = np.take(x, low, axis=axis)
    b = np.take(x, high, axis=axis)
    b -= a
    b *= frac_b
    a += b
    return a


def resize(x: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize (B,C,H,W) float32 planes to ``size`` = (h, w), as ``torch.nn.functional.interpolate`` does.

    Args:
        x: (B,C,H,W) float32.
        size: (h, w) of the result.
        mode: "bilinear" (align_corners=False, no antialiasing: f's logits to the image size),
            "bilinear_aa" (antialias=True: the camera frame to f's working size), "area" (adaptive
            average pooling: f's logits shrunk to h's input size).

    Returns:
        (B,C,h,w) float32 (``x`` itself when the size already matches).

    Raises:
        ConfigError: unknown mode or a size below 1 pixel.
    """
    if mode not in RESIZE_MODES:
        raise ConfigError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ConfigError(f"resize needs a size of at least 1x1 pixels, got {size!r}")
    if tuple(x.shape[-2:]) == (height, width):
        return x
    if mode == "bilinear":
        return _bilinear_axis(_bilinear_axis(x, height, 2), width, 3)
    rows, cols = _weights(x.shape[2], height, mode), _weights(x.shape[3], width, mode)
    out: np.ndarray = np.matmul(np.matmul(rows, x.astype(np.float32, copy=False)), cols.T)
    return out


# ------------------------------------------------------------------------------------------ scores


def argmax_labels(scores: np.ndarray) -> np.ndarray:
    """Per-pixel argmax over the class axis of (B,M,H,W) scores -> (B,H,W) uint8 (uint16 when M > 255).

    The same labels as ``scores.argmax(axis=1)`` (ties go to the lowest class) for finite scores, in
    about half its time at camera sizes: the maximum over the M class planes is a fast in-order reduction,
    then each plane marks where it reaches it, the highest class first (docs/performance.md).
    """
    return argmax_and_max(scores)[0]


def argmax_and_max(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``argmax_labels`` and the per-pixel maximum it found, (B,H,W) float (``label_probs``'s ``top``)."""
    num_classes = scores.shape[1]
    dtype = np.uint8 if num_classes <= 255 else np.uint16
    best = scores.max(axis=1)
    out = np.zeros(best.shape, dtype=dtype)
    hit = np.empty(best.shape, dtype=bool)
    for c in range(num_classes - 1, 0, -1):
        np.equal(scores[:, c], best, out=hit)
        np.copyto(out, dtype(c), where=hit)
    np.equal(scores[:, 0], best, out=hit)
    np.copyto(out, dtype(0), where=hit)
    return out, best


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis of (M,H,W) float32 logits -> (M,H,W) float32 probabilities."""
    out: np.ndarray = logits - logits.max(axis=0, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=0, keepdims=True)
    return out


def label_probs(logits: np.ndarray, labels: np.ndarray, top: np.ndarray | None = None) -> np.ndarray:
    """Softmax probability of each pixel's given label: (M,H,W) logits, (H,W) labels -> (H,W) float32.

    ``softmax(logits)`` at ``labels`` without writing the M probability planes (one exp pass); ``top``
    is the per-pixel maximum of the logits when already known (``argmax_and_max``).
    """
    top = logits.max(axis=0) if top is None else top
    shifted = logits - top
    total = np.exp(shifted, out=shifted).sum(axis=0)
    picked = np.take_along_axis(logits, labels[None].astype(np.intp), axis=0)[0]
    out: np.ndarray = (np.exp(picked - top) / total).astype(np.float32, copy=False)
    return out


class EdgeResult:
    """What the edge computes for one frame.

    Attributes:
        labels: (H,W) argmax of f's logits at the original image size (= the argmax of ``probs``),
            uint8 (uint16 when M > 255).
        probs: (M,H,W) float32 softmax of f's logits upsampled to the original image size: the "pred"
            of Algorithm 1. Computed on first access (and kept): a frame nobody asks probabilities
            for costs no full-resolution softmax.
        logits: (M,h,w) float32 raw logits of f at the working size (what h sees).
        confidence: h(f(x)) in [0,1]; the frame is hard (uploaded) when confidence <= delta (Eq. 2).
        compute_s: seconds of edge compute for this frame (preprocess, f, h, upsampling, argmax; not
            the softmax of ``probs``); for a batch, the batch time divided by its size.
        version: model version of the f/h pair that produced the result.
    """

    __slots__ = (
        "_full",
        "_top",
        "_label_probs",
        "_probs",
        "_softmax",
        "compute_s",
        "confidence",
        "labels",
        "logits",
        "version",
    )

    def __init__(
        self,
        labels: np.ndarray,
        logits: np.ndarray,
        confidence: float,
        compute_s: float,
        version: int = 0,
        *,
        full_logits: np.ndarray | None = None,
        top: np.ndarray | None = None,
        softmax_fn: Callable[[np.ndarray], np.ndarray] = softmax,
        label_probs_fn: Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray] = label_probs,
    ) -> None:
        self.labels = labels
        self.logits = logits
        self.confidence = confidence
        self.compute_s = compute_s
        self.version = version
        self._full = logits if full_logits is None else full_logits  # (M,H,W) at the image size
        self._top = top  # (H,W) maximum of _full over the classes, when the predictor found it
        self._probs: np.ndarray | None = None
        self._softmax = softmax_fn
        self._label_probs = label_probs_fn

    @property
    def probs(self) -> np.ndarray:
        """(M,H,W) float32 softmax of f's logits at the image size (computed once, on first use)."""
        if self._probs is None:
            self._probs = self._softmax(self._full)
        return self._probs

    def label_probs(self, labels: np.ndarray) -> np.ndarray:
        """(H,W) float32: ``probs`` at each pixel's label (f's score of the edge's or the cloud's labels),
        without the M full-resolution probability planes unless ``probs`` was already computed."""
        if self._probs is not None:
            out: np.ndarray = np.take_along_axis(self._probs, labels[None].astype(np.intp), axis=0)[0]
            return out
        return self._label_probs(self._full, labels, self._top)

    def __repr__(self) -> str:
        return (
            f"EdgeResult(labels={self.labels.shape}, logits={self.logits.shape}, "
            f"confidence={self.confidence:.4f}, compute_s={self.compute_s:.4f}, version={self.version})"
        )


def edge_results(
    full_logits: np.ndarray,
    logits: np.ndarray,
    confidence: np.ndarray,
    start: float,
    version: int,
    **score_fns: Callable[..., np.ndarray],
) -> list[EdgeResult]:
    """One EdgeResult per frame of a batch, labelled here: (B,M,H,W) logits at the image size, (B,M,h,w)
    at the working size, (B,) confidences, the batch's ``time.perf_counter()`` start (compute_s is the
    time until the labels, per frame); ``score_fns``: ``softmax_fn`` / ``label_probs_fn`` of EdgeResult.
    argmax over the logits: softmax keeps the order, so labels need no full-resolution softmax."""
    labels, top = argmax_and_max(full_logits)
    per_frame_s = (time.perf_counter() - start) / len(labels)
    return [
        EdgeResult(
            labels=labels[i],
            logits=logits[i],
            confidence=float(confidence[i]),
            compute_s=per_frame_s,
            version=version,
            full_logits=full_logits[i],
            top=top[i],
            **score_fns,
        )
        for i in range(len(labels))
    ]


@runtime_checkable
class FramePredictor(Protocol):
    """Runs f and h on camera frames: ``algo.predictor.EdgePredictor`` (torch or ONNX Runtime from a
    torch f) or ``algo.onnx_predictor.OnnxEdgePredictor`` (a bundle's ONNX exports, no torch)."""

    @property
    def version(self) -> int:
        """Model version of the weights in use."""
        ...

    @property
    def num_classes(self) -> int:
        """M, the class count of f."""
        ...

    def predict(self, rgb: np.ndarray) -> EdgeResult:
        """f and h on one (H,W,3) uint8 RGB frame."""
        ...

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[EdgeResult]:
        """f and h on several frames, one result each, in order."""
        ...

    def warmup(self, height: int = 480, width: int = 640) -> float:
        """Run one black frame (first-call allocations); returns its compute_s."""
        ...


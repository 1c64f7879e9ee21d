"""OnnxEdgePredictor: f and h of a bundle's ONNX graphs through ONNX Runtime, everything else in numpy.

The lean edge (backend onnxruntime with a bundle that carries ONNX graphs, ``onnx_export``): no torch
is imported, so a robot needs ONNX Runtime and numpy only (requirements-edge.txt). Per frame, as
``predictor.EdgePredictor`` does it: x = normalise(rgb) (resized to the working size with
antialiasing), logits = f(x), confidence = h(logits resized to h's input size), labels = argmax of the
logits at the image size. Same labels as the torch predictor up to float rounding (tested).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from laecips_core.algo import frames
from laecips_core.algo.frames import EdgeResult
from laecips_core.algo.onnx_runtime import OnnxBackend
from laecips_core.errors import ConfigError, WeightsError


class OnnxEdgePredictor:
    """Runs f and h from ONNX graphs on camera frames (``frames.FramePredictor``), without torch.

    Args:
        f_graph: ONNX graph of f (bytes), mapping (B,3,H,W) float32 to (B,M,H,W) logits.
        h_graph: ONNX graph of h (bytes), mapping (1,M,h,w) logits at ``miner_in_size`` to (1,) confidence.
        num_classes: M.
        miner_in_size: (h, w) of h's input.
        input_size: (H,W) working size f runs at; None runs at each image's own size, or at the graph's
            fixed size when f could not be exported with symbolic height and width.
        threads: ONNX Runtime intra-op threads (None: its default).
        version: model version of the graphs.

    Raises:
        WeightsError: a graph does not load, or its input does not fit M / miner_in_size.
        ConfigError: bad input_size.
    """

    def __init__(
        self,
        f_graph: bytes,
        h_graph: bytes,
        *,
        num_classes: int,
        miner_in_size: tuple[int, int],
        input_size: tuple[int, int] | None = None,
        threads: int | None = None,
        version: int = 0,
    ) -> None:
        if input_size is not None and (len(input_size) != 2 or min(int(v) for v in input_size) < 32):
            raise ConfigError(f"input_size must be (H, W) with both >= 32 pixels, got {input_size!r}")
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self._f = OnnxBackend(f_graph, threads=threads, name="f")
        self._h = OnnxBackend(h_graph, threads=threads, name="h")
        self.miner_in_size = (int(miner_in_size[0]), int(miner_in_size[1]))
        if self._f.channels not in (None, 3):
            raise WeightsError(f"the f graph takes {self._f.channels} input channels, not 3 (RGB)")
        if self._h.channels not in (None, num_classes) or self._h.fixed_hw not in (None, self.miner_in_size):
            raise WeightsError(
                f"the h graph takes (B,{self._h.channels},{self._h.fixed_hw}) but f gives M={num_classes} "
                f"logits resized to {self.miner_in_size}: the bundle's graphs do not belong together"
            )
        fixed = self._f.fixed_hw
        if fixed is not None and self.input_size is not None and self.input_size != fixed:
            raise ConfigError(
                f"the bundle's f graph runs at {fixed[0]}x{fixed[1]} only, but input_size is "
                f"{self.input_size[0]}x{self.input_size[1]}: set input_height/input_width to 0 (or to "
                f"{fixed[0]}x{fixed[1]}), or export the graph at that size (laecips export-onnx --size)"
            )
        self._num_classes = int(num_classes)
        self._version = int(version)
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        """Model version of the graphs in use."""
        return self._version

    @property
    def num_classes(self) -> int:
        """M, the class count of f."""
        return self._num_classes

    @property
    def backend(self) -> OnnxBackend:
        """The ONNX Runtime session of f."""
        return self._f

    def predict(self, rgb: np.ndarray) -> EdgeResult:
        """Run f and h on one (H,W,3) uint8 RGB frame.

        Raises:
            ImageError: not an (H,W,3) uint8 image.
        """
        return self.predict_batch([rgb])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[EdgeResult]:
        """Run f and h on several frames (one batch when they have one shape); one result each, in order."""
        checked = [frames.check_image(rgb) for rgb in images]
        if not checked:
            return []
        if len({rgb.shape for rgb in checked}) > 1:
            return [res for rgb in checked for res in self._run([rgb])]
        return self._run(checked)

    def warmup(self, height: int = 480, width: int = 640) -> float:
        """Run one black frame through f and h (first-call allocations); returns its compute_s."""
        return self.predict(np.zeros((height, width, 3), np.uint8)).compute_s

    def _run(self, images: list[np.ndarray]) -> list[EdgeResult]:
        start = time.perf_counter()
        height, width = images[0].shape[:2]
        x = frames.normalise(images[0][None] if len(images) == 1 else np.stack(images))
        work_hw = self.input_size or self._f.fixed_hw
        if work_hw is not None:
            x = frames.resize(x, work_hw, "bilinear_aa")
        with self._lock:  # one ONNX Runtime run at a time per session pair (its threads do the rest)
            logits = self._f.logits(x)
            if logits.ndim != 4 or logits.shape[:2] != (len(images), self._num_classes):
                raise WeightsError(
                    f"the f graph returned logits of shape {logits.shape}, expected ({len(images)}, "
                    f"{self._num_classes}, h, w)"
                )
            small_h, small_w = logits.shape[-2:]
            shrink = small_h >= self.miner_in_size[0] and small_w >= self.miner_in_size[1]
            h_in = frames.resize(logits, self.miner_in_size, "area" if shrink else "bilinear")
            confidence = self._h.logits(h_in).astype(np.float64).reshape(-1)
        if confidence.shape[0] != len(images):
            raise WeightsError(f"the h graph returned {confidence.shape[0]} values for {len(images)} frames")
        full = logits if (small_h, small_w) == (height, width) else frames.resize(logits, (height, width))
        return frames.edge_results(full, logits, confidence, start, self._version)

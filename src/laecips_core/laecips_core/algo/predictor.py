"""EdgePredictor: runs f and the hard-input miner h on camera frames, with weight swaps between frames."""

from __future__ import annotations

import copy
import ctypes
import functools
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from laecips_core.algo import frames
from laecips_core.algo.backends import TorchBackend, build_backend, export_onnx
from laecips_core.algo.frames import (
    DEFAULT_STREAM_NORM_PRIOR,
    EdgeResult,
    check_prior,
    edge_results,
)
from laecips_core.algo.onnx_runtime import InferenceBackend, OnnxBackend
from laecips_core.algo.state import Bundle, apply_bundle, load_state_strict
from laecips_core.algo.streamnorm import with_stream_norm
from laecips_core.errors import ConfigError, WeightsError

if TYPE_CHECKING:
    from laecips_core.algo.mining import Miner

# Example input size for ONNX export when no input_size is given (the graph is exported with dynamic
# batch/height/width where the model allows it, so this only fixes the size of a fallback graph).
DEFAULT_EXPORT_HW = (480, 640)


@dataclass(frozen=True)
class _Active:
    """One consistent (f, h, backend, version) set; replaced as a whole by ``set_weights``."""

    f: nn.Module
    miner: Miner
    backend: InferenceBackend
    version: int


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc mallopt parameters (malloc.h)


@functools.cache
def retain_freed_memory() -> bool:
    """Let glibc keep freed heap memory instead of returning it to the OS after every frame.

    f allocates and frees the same few-MB activations on every frame; with glibc's defaults much of
    that memory is unmapped and faulted in again each time (measured here: ~1.2M page faults and 3.4 s
    of system time per 25 frames at 640x480, 0.16M and 0.6 s with this; docs/performance.md). Keeps up
    to 512 MiB free in the heap and serves blocks up to 32 MiB from it. Process-wide; done once.

    Returns:
        Whether glibc accepted the settings (False off glibc, e.g. macOS or musl).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        settings = ((_M_TRIM_THRESHOLD, 512 << 20), (_M_TOP_PAD, 64 << 20), (_M_MMAP_THRESHOLD, 32 << 20))
        return all(libc.mallopt(param, value) == 1 for param, value in settings)
    except (OSError, AttributeError):
        return False


def normalise(rgb: np.ndarray) -> torch.Tensor:
    """``models.preprocess`` by table lookup (``frames.normalise``), as a torch tensor."""
    return torch.from_numpy(frames.normalise(rgb))


def torch_softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis of (M,H,W) logits with torch's threads (``frames.softmax`` in numpy)."""
    with torch.inference_mode():
        out: np.ndarray = torch.softmax(torch.from_numpy(logits)[None], dim=1)[0].numpy()
    return out


def torch_label_probs(logits: np.ndarray, labels: np.ndarray, top: np.ndarray | None = None) -> np.ndarray:
    """``frames.label_probs`` with torch's threads: softmax of (M,H,W) logits at (H,W) labels."""
    with torch.inference_mode():
        x = torch.from_numpy(logits)
        best = x.amax(0) if top is None else torch.from_numpy(top)
        shifted = x - best
        total = shifted.exp_().sum(0)  # in place: one M-plane buffer, not two
        picked = x.gather(0, torch.from_numpy(labels.astype(np.int64))[None])[0]
        out: np.ndarray = (torch.exp(picked - best) / total).numpy()
    return out


def miner_network(miner: object) -> nn.Module | None:
    """Return the trainable network of a miner (``NeuralMiner.net``, or the miner if it is a Module)."""
    if isinstance(miner, nn.Module):
        return miner
    net = getattr(miner, "net", None)
    return net if isinstance(net, nn.Module) else None


class EdgePredictor:
    """Runs the edge model f and the miner h per frame, like segment-anything's SamPredictor wraps Sam.

    Args:
        f: edge model (``models.build_edge_model``); moved to ``device`` and put in eval mode.
        miner: a ``mining.Miner`` (NeuralMiner over a MinerNet h, or MessMiner/SmMiner/SppMiner).
        backend: "torch", "onnxruntime" or "tensorrt" (which raises ConfigError off a Jetson).
        input_size: (H,W) working size f runs at, in pixels; None runs at each image's own size (or at
            the ONNX graph's fixed size if the export could not be made dynamic).
        onnx_path: an existing ONNX export of exactly this f (backend "onnxruntime"); None exports f to
            a private temp directory (and again after every ``set_weights``).
        device: torch device for f and h ("cpu").
        version: model version of the initial weights.
        threads: ONNX Runtime intra-op threads (None: its default).
        stream_norm_prior: N of ``streamnorm``: f's BatchNorm layers normalise each frame with
            (N * stored + the frame's own statistics) / (N + 1); 0 uses the stored statistics only.
            The backend runs such a copy of f; ``model`` stays the plain f (what the trainer gets).

    The first predictor of a process calls ``retain_freed_memory`` (glibc keeps freed activations).

    Raises:
        ConfigError: bad input_size or backend.
    """

    def __init__(
        self,
        f: nn.Module,
        miner: Miner,
        *,
        backend: str = "torch",
        input_size: tuple[int, int] | None = None,
        onnx_path: str | Path | None = None,
        device: str = "cpu",
        version: int = 0,
        threads: int | None = None,
        stream_norm_prior: float = DEFAULT_STREAM_NORM_PRIOR,
    ) -> None:
        self.stream_norm_prior = check_prior(stream_norm_prior)
        retain_freed_memory()
        if input_size is not None:
            if len(input_size) != 2 or min(int(v) for v in input_size) < 32:
                raise ConfigError(f"input_size must be (H, W) with both >= 32 pixels, got {input_size!r}")
            input_size = (int(input_size[0]), int(input_size[1]))
        if backend not in ("torch", "onnxruntime"):
            build_backend(backend)  # raises the registry's ConfigError (unknown, or tensorrt here)
        self.backend_name = backend
        self.input_size = input_size
        self.device = device
        self.threads = threads
        self._lock = threading.Lock()
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._finalizer: weakref.finalize[[], EdgePredictor] | None = None
        f = f.to(device).eval()
        net = miner_network(miner)
        if net is not None:
            net.to(device).eval()
        self._num_classes = self._infer_num_classes(f)
        backend_obj = self._make_backend(f, version, onnx_path)
        self._active = _Active(f, miner, backend_obj, int(version))

    # ------------------------------------------------------------------------------------ properties

    @property
    def version(self) -> int:
        """Model version of the weights in use."""
        return self._active.version

    @property
    def num_classes(self) -> int:
        """M, the class count of f."""
        return self._num_classes

    @property
    def model(self) -> nn.Module:
        """The edge model f in use (do not modify it in place; use ``set_weights``)."""
        return self._active.f

    @property
    def miner(self) -> Miner:
        """The miner h in use."""
        return self._active.miner

    @property
    def backend(self) -> InferenceBackend:
        """The inference backend running f now (``TorchBackend`` or ``OnnxBackend``)."""
        return self._active.backend

    # ------------------------------------------------------------------------------------ set-up helpers

    def _infer_num_classes(self, f: nn.Module) -> int:
        declared = getattr(f, "num_classes", None)
        if isinstance(declared, int):
            return declared
        with torch.inference_mode():
            out = f(torch.zeros(1, 3, 64, 64, device=self.device))
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            raise ConfigError("f must return a (B,M,H,W) logits tensor; wrap dict outputs (see models.py)")
        return int(out.shape[1])

    def _make_backend(self, f: nn.Module, version: int, onnx_path: str | Path | None) -> InferenceBackend:
        if self.backend_name == "torch":
            return TorchBackend(with_stream_norm(f, self.stream_norm_prior), device=self.device)
        if onnx_path is None:  # a given export is taken as it is: whoever made it chose its normalisation
            if self._workdir is None:
                self._workdir = tempfile.TemporaryDirectory(prefix="laecips_onnx_")
                self._finalizer = weakref.finalize(self, self._workdir.cleanup)
            height, width = self.input_size or DEFAULT_EXPORT_HW
            g = with_stream_norm(f, self.stream_norm_prior)
            onnx_path = export_onnx(g, Path(self._workdir.name) / f"f_v{version}.onnx", height, width)
        return OnnxBackend(onnx_path, threads=self.threads)

    def close(self) -> None:
        """Delete the private ONNX exports (the predictor still works with the torch backend)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> EdgePredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ inference

    def predict(self, rgb: np.ndarray) -> EdgeResult:
        """Run f and h on one frame.

        Args:
            rgb: (H,W,3) uint8 RGB.

        Returns:
            ``EdgeResult`` (probs and labels at H x W, logits at the working size).

        Raises:
            ImageError: not an (H,W,3) uint8 image.
        """
        return self.predict_batch([rgb])[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[EdgeResult]:
        """Run f and h on several frames at once (one batch when their working sizes agree).

        Args:
            images: (H,W,3) uint8 RGB frames.

        Returns:
            One ``EdgeResult`` per frame, in order; all made with the same weights version.
        """
        images = [frames.check_image(rgb) for rgb in images]
        if not images:
            return []
        with self._lock:
            active = self._active  # a frame in progress keeps these weights even if they are swapped
        work_hw = self.input_size or active.backend.fixed_hw
        if work_hw is None and len({rgb.shape for rgb in images}) > 1:
            results: list[EdgeResult] = []
            for rgb in images:
                results += self._run(active, [rgb], None)
            return results
        if len({rgb.shape for rgb in images}) > 1:
            # Same working size: resize each, then one batch.
            return [res for rgb in images for res in self._run(active, [rgb], work_hw)]
        return self._run(active, images, work_hw)

    def _run(
        self, active: _Active, images: list[np.ndarray], work_hw: tuple[int, int] | None
    ) -> list[EdgeResult]:
        start = time.perf_counter()
        height, width = images[0].shape[:2]
        batch = images[0][None] if len(images) == 1 else np.stack(images)
        with torch.inference_mode():
            x = normalise(batch)
            if work_hw is not None and tuple(work_hw) != (height, width):
                x = F.interpolate(x, size=work_hw, mode="bilinear", align_corners=False, antialias=True)
            logits_np = active.backend.logits(x.numpy())
            logits = torch.from_numpy(logits_np)
            if logits.ndim != 4 or logits.shape[0] != len(images) or logits.shape[1] != self._num_classes:
                raise ConfigError(
                    f"f returned logits of shape {tuple(logits.shape)}, expected ({len(images)}, "
                    f"{self._num_classes}, h, w); is the ONNX file an export of this f?"
                )
            confidence = np.asarray(active.miner.confidence(logits), dtype=np.float64).reshape(-1)
            if confidence.shape[0] != len(images):
                raise ConfigError(
                    f"miner returned {confidence.shape[0]} confidences for {len(images)} frames"
                )
            full_np = logits_np
            if tuple(logits.shape[-2:]) != (height, width):
                full = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
                full_np = full.numpy()
        return edge_results(
            full_np,
            logits_np,
            confidence,
            start,
            active.version,
            softmax_fn=torch_softmax,
            label_probs_fn=torch_label_probs,
        )

    def warmup(self, height: int = 480, width: int = 640) -> float:
        """Run one black frame through f and h (first-call allocations); returns its compute_s."""
        return self.predict(np.zeros((height, width, 3), np.uint8)).compute_s

    # ------------------------------------------------------------------------------------ weight swaps

    def set_weights(
        self,
        f_state: Mapping[str, torch.Tensor],
        h_state: Mapping[str, torch.Tensor] | None = None,
        version: int | None = None,
    ) -> int:
        """Install new weights for f (and h) without disturbing frames in progress.

        New module instances are built (copies of the current f and miner), loaded strictly, exported
        for ONNX Runtime if that backend is used, and only then swapped in under a lock: a frame that
        already started finishes with the old weights, the next one uses the new ones.

        Args:
            f_state: state dict of f (``Bundle.f_state``).
            h_state: state dict of the miner network h, or None/empty to keep the current miner.
            version: version of the new weights; None uses the current version + 1.

        Returns:
            The version now in use.

        Raises:
            WeightsError: keys or shapes do not fit f or h, or h weights for a miner without a network.
        """
        active = self._active
        new_f = copy.deepcopy(active.f)
        load_state_strict(new_f, f_state, "f")
        new_miner = active.miner
        if h_state:
            if miner_network(active.miner) is None:
                raise WeightsError(
                    f"miner {type(active.miner).__name__} has no network; h weights need a NeuralMiner"
                )
            new_miner = copy.deepcopy(active.miner)
            net = miner_network(new_miner)
            assert net is not None  # a deep copy keeps the attribute
            load_state_strict(net, h_state, "h")
        return self._install(new_f, new_miner, active.version + 1 if version is None else int(version))

    def set_bundle(self, bundle: Bundle) -> int:
        """Install a verified ``state.Bundle`` (f and h; model name and class count are checked).

        Returns:
            The bundle's version, now in use.

        Raises:
            WeightsError: the bundle does not fit (see ``state.apply_bundle``).
        """
        active = self._active
        new_f = copy.deepcopy(active.f)
        new_miner = copy.deepcopy(active.miner) if bundle.h_state else active.miner
        h_net = miner_network(new_miner) if bundle.h_state else None
        if bundle.h_state and h_net is None:
            raise WeightsError(
                f"the bundle carries miner weights but miner {type(active.miner).__name__} has no network"
            )
        apply_bundle(bundle, new_f, h_net)
        return self._install(new_f, new_miner, bundle.version)

    def _install(self, f: nn.Module, miner: Miner, version: int) -> int:
        f = f.eval()
        net = miner_network(miner)
        if net is not None:
            net.eval()
        backend = self._make_backend(f, version, None)
        with self._lock:
            old, self._active = self._active, _Active(f, miner, backend, version)
        # Our previous export is no longer needed on disk: its ONNX Runtime session (which a frame in
        # progress may still use) holds the whole model in memory.
        old_path = getattr(old.backend, "path", None)
        new_path = getattr(backend, "path", None)
        if self._workdir is not None and isinstance(old_path, Path) and old_path != new_path:
            if old_path.parent == Path(self._workdir.name).resolve():
                old_path.unlink(missing_ok=True)
        return version

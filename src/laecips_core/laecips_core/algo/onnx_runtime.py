"""ONNX Runtime inference of f and h, without torch: what the lean edge (backend onnxruntime) runs.

``OnnxBackend`` takes an ONNX graph as a file or as bytes (a bundle's export, verified with the rest of
the bundle before it gets here) and maps a (B,C,H,W) float32 batch to the graph's one output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from laecips_core.errors import ConfigError, WeightsError


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs the edge model f on a preprocessed batch.

    ``fixed_hw`` is the (H,W) the backend requires, or None when any size works.
    """

    fixed_hw: tuple[int, int] | None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Map (B,3,H,W) float32 normalised images to (B,M,H,W) float32 logits of f."""
        ...


def check_batch(batch: np.ndarray, channels: int | None = 3) -> np.ndarray:
    """The batch as a contiguous (B,C,H,W) float32 array (C = ``channels`` unless None).

    Raises:
        ConfigError: not a rank-4 array with that channel count.
    """
    if (
        not isinstance(batch, np.ndarray)
        or batch.ndim != 4
        or (channels is not None and batch.shape[1] != channels)
    ):
        shape = getattr(batch, "shape", None)
        raise ConfigError(
            f"backend input must be a (B,{channels or 'C'},H,W) float32 array, "
            f"got {type(batch).__name__} {shape}"
        )
    if batch.dtype != np.float32:
        batch = batch.astype(np.float32)
    return np.ascontiguousarray(batch)


class OnnxBackend:
    """ONNX Runtime inference of an exported f or h (see ``backends.export_onnx``).

    Args:
        model: a .onnx file, or the graph's bytes (e.g. a bundle's ``onnx.f``). External data (a
            ``.onnx.data`` file next to a file) is resolved relative to the model file, so the pair can
            be moved together and loaded from any working directory.
        providers: ONNX Runtime execution providers, in order of preference.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
        name: what the graph is, for error messages ("f", "h"; default: the file name).
        spin: let the intra-op threads busy-wait for work after a run (ONNX Runtime's default). Off
            here: the edge runs f's and h's sessions back to back, and each one's spinning threads
            took the cores from the other (2 cores, default f at 640x480: f 136 -> 94 ms and h 13 ->
            6 ms with spinning off; docs/performance.md).

    Attributes:
        fixed_hw: the (H,W) the graph requires, or None when any size works.
        channels: C of the graph's (B,C,H,W) input (3 for f, M for h), or None when symbolic.

    Raises:
        WeightsError: the file is missing or not a loadable model.
        ConfigError: onnxruntime is not installed.
    """

    def __init__(
        self,
        model: str | Path | bytes,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        name: str | None = None,
        spin: bool = False,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ConfigError(
                "backend 'onnxruntime' needs onnxruntime: pip install 'laecips_core[onnx]'"
            ) from err
        source: str | bytes
        if isinstance(model, bytes):
            self.path: Path | None = None
            self.name = name or "ONNX graph"
            source = model
        else:
            self.path = Path(model).resolve()
            self.name = name or self.path.name
            if not self.path.is_file():
                raise WeightsError(
                    f"ONNX model {self.path} does not exist; create it with backends.export_onnx"
                )
            source = str(self.path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=list(providers))
        except Exception as err:  # onnxruntime raises its own untyped Fail/InvalidGraph exceptions
            raise WeightsError(
                f"ONNX Runtime cannot load {self.name}: {err}; if it uses external data, keep the "
                ".onnx.data file beside it under the name it was exported with"
            ) from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise WeightsError(f"{self.name} must have one (B,C,H,W) input, has {[i.shape for i in inputs]}")
        self.input_name = inputs[0].name
        batch_dim, channels, height, width = inputs[0].shape
        self.fixed_hw = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        self.channels: int | None = channels if isinstance(channels, int) else None
        self.fixed_batch: int | None = batch_dim if isinstance(batch_dim, int) else None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(B,C,H,W) float32 -> the graph's output for it (f: (B,M,H,W) logits; h: (B,) confidences)."""
        batch = check_batch(batch, self.channels)
        if self.fixed_hw is not None and tuple(batch.shape[2:]) != self.fixed_hw:
            raise ConfigError(
                f"{self.name} was exported for {self.fixed_hw[0]}x{self.fixed_hw[1]} inputs, got "
                f"{batch.shape[2]}x{batch.shape[3]}; set the predictor's input_size or re-export"
            )
        if self.fixed_batch is not None and batch.shape[0] != self.fixed_batch:
            outs = [self.logits(batch[i : i + 1]) for i in range(batch.shape[0])]
            return np.concatenate(outs, axis=0)
        (out,) = self.session.run(None, {self.input_name: batch})
        return np.asarray(out, dtype=np.float32)

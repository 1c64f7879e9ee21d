"""The edge's f and h (the paper's f and h), and Algorithm 2's model update on the robot.

``load_candidate`` verifies a safetensors bundle (sha256, Ed25519 signature, architecture, M) and
builds new instances of f and h from it: with backend onnxruntime and a bundle that carries ONNX
graphs, the lean ``OnnxEdgePredictor`` (no torch imported); otherwise torch's ``EdgePredictor``.
``ModelSlot`` swaps it in between two frames; ``check_update`` / ``prepare_update`` decide which
announced versions to take (versions only go up) and fetch + verify one; ``check_operator_path`` /
``OperatorLoad`` / ``prepare_request``: an operator's runtime edge_model.path is only checked on the
parameter callback, then verified and loaded by the same update worker (and swapped the same way) as
an announced update.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import zenoh

from laecips_core import files, transport
from laecips_core.algo import state
from laecips_core.algo.frames import FramePredictor
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.services.edge_config import EdgeConfig
from laecips_core.storage import bundle_loading, signing, weight_store

# ---------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelCandidate:
    """A verified f + h, ready to be swapped in between frames.

    Attributes:
        predictor: EdgePredictor over new instances of f and h, or OnnxEdgePredictor over ONNX graphs.
        version: Bundle version (0 = untrained f).
        sha256: Hex digest of the bundle file ("" for the untrained f).
        path: Bundle file ("" for the untrained f).
        origin: "start", "operator", "update" or "untrained" (for logs).
    """

    predictor: FramePredictor
    version: int
    sha256: str
    path: str
    origin: str


def build_predictor(cfg: EdgeConfig, bundle: state.Bundle | None) -> FramePredictor:
    """New instances of f and h, with the bundle's weights (strictly), wrapped in an EdgePredictor.

    Args:
        cfg: Edge parameters (model name, M, miner, backend, input size).
        bundle: Verified bundle, or None for an untrained f (ImageNet backbone) and h.

    Raises:
        WeightsError: The bundle does not fit f/h, or carries no h while miner=neural.
    """
    if not torch_available():
        raise ConfigError(
            "torch is not installed, so this edge runs only a bundle's ONNX graphs: set backend to "
            "onnxruntime and edge_model.path to a bundle that carries them (`laecips export-onnx`)"
        )
    from laecips_core.algo.bundles import build_models
    from laecips_core.algo.mining import MinerNet, NeuralMiner, build_miner
    from laecips_core.algo.models import build_edge_model, has_pretrained_backbone
    from laecips_core.algo.predictor import EdgePredictor

    if bundle is None:
        f = build_edge_model(
            cfg.edge_model_name,
            cfg.num_classes,
            pretrained_backbone=has_pretrained_backbone(cfg.edge_model_name),
        ).eval()
        h = MinerNet(cfg.num_classes).eval()
        version = 0
    else:
        if cfg.miner == "neural" and not bundle.h_state:
            raise WeightsError(
                "bundle carries no miner weights h but miner=neural: load a bundle from `laecips pretrain` "
                "or the trainer, or set miner to mess, sm or spp"
            )
        f, h = build_models(bundle)
        version = bundle.version
    miner = NeuralMiner(h) if cfg.miner == "neural" else build_miner(cfg.miner, cfg.num_classes)
    return EdgePredictor(
        f,
        miner,
        backend=cfg.backend,
        input_size=cfg.input_size,
        version=version,
        stream_norm_prior=cfg.stream_norm_prior,
    )


def untrained_candidate(cfg: EdgeConfig) -> ModelCandidate:
    """Version 0: f with its ImageNet backbone and an untrained h, until the trainer publishes weights."""
    return ModelCandidate(build_predictor(cfg, None), 0, "", "", "untrained")


def load_candidate(
    cfg: EdgeConfig,
    path: str | Path,
    *,
    origin: str,
    expected_sha256: str | None = None,
    signature: str | None = None,
    expected_version: int | None = None,
) -> ModelCandidate:
    """Verify a bundle file and build a ready-to-swap f + h from it.

    Args:
        cfg: Edge parameters (the trusted key, the model name and M the bundle must match).
        path: Safetensors bundle.
        origin: "start", "operator" or "update" (for logs).
        expected_sha256: Hex digest it must have (from the announcement).
        signature: ``.sig`` text (a digest signature or a signed announcement record); read from
            ``<path>.sig`` when None.
        expected_version: Version the metadata must state (from the announcement).

    Raises:
        WeightsError: Missing file, hash or signature mismatch, a signed announcement for another robot,
            wrong architecture or class count.
    """
    key = cfg.trusted_public_key or None
    if key is not None and signature is None:
        signature = signing.read_signature(path)
        if signature is None:
            raise WeightsError(
                f"{path} has no signature file {path}{signing.SIGNATURE_SUFFIX} and trusted_public_key "
                "is set: load a signed bundle (the node keeps one .sig per received version)"
            )
    if key is not None and signature is not None:
        record = signing.parse_signature_record(signature)
        if record is not None and record[0]["robot_id"] != cfg.robot_id:
            raise WeightsError(
                f"{path} was announced for robot {record[0]['robot_id']!r}, not {cfg.robot_id!r}; "
                "do not load another robot's weights"
            )
    checks = _Checks(expected_sha256=expected_sha256, public_key=key, signature=signature if key else None)
    if use_onnx_graphs(cfg, bundle_loading.read_bundle_metadata(path)):
        graphs = bundle_loading.load_onnx_graphs(path, **checks)
        _check_bundle_fits(cfg, graphs.metadata, expected_version)
        predictor: FramePredictor = lean_predictor(cfg, graphs)
        version = graphs.version
    else:
        bundle = bundle_loading.load_bundle(path, **checks)
        _check_bundle_fits(cfg, bundle.metadata, expected_version)
        predictor, version = build_predictor(cfg, bundle), bundle.version
    digest = expected_sha256 or files.sha256_file(path)
    return ModelCandidate(predictor, version, digest, str(path), origin)


class _Checks(TypedDict):
    """What a bundle is verified against before it is decoded (``bundle_loading``'s keyword arguments)."""

    expected_sha256: str | None
    public_key: str | None
    signature: str | None


def torch_available() -> bool:
    """Whether torch can be imported here (a lean robot install has ONNX Runtime only)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked torch counts as none
        return False


def use_onnx_graphs(cfg: EdgeConfig, metadata: Mapping[str, str]) -> bool:
    """Whether a bundle runs as its ONNX graphs (no torch): backend onnxruntime, a bundle that carries
    them, miner neural and the same stream_norm_prior f's graph was exported with.

    Otherwise torch's EdgePredictor runs it (exporting f itself for onnxruntime); without torch that is
    an error saying what to change.

    Raises:
        WeightsError: torch is missing and the bundle cannot run as ONNX graphs here.
    """
    if cfg.backend != "onnxruntime":
        return False
    why = ""
    if not bundle_loading.has_onnx(metadata):
        why = "carries no ONNX graphs (add them with `laecips export-onnx`)"
    elif cfg.miner != "neural":
        why = f"has ONNX graphs for the neural miner h, but miner is {cfg.miner!r}"
    else:
        try:
            exported = float(metadata["onnx_stream_norm_prior"])
        except ValueError:
            exported = float("nan")
        if exported != cfg.stream_norm_prior:
            why = (
                f"has f's graph for stream_norm_prior {metadata['onnx_stream_norm_prior']} but this node "
                f"sets {cfg.stream_norm_prior:g} (set it to match, or export again with --stream-norm-prior)"
            )
    if not why:
        return True
    if torch_available():
        return False
    raise WeightsError(f"the bundle {why}; without torch this edge runs a bundle's ONNX graphs only")


def lean_predictor(cfg: EdgeConfig, graphs: bundle_loading.OnnxGraphs) -> FramePredictor:
    """OnnxEdgePredictor over a verified bundle's graphs of f and h (no torch)."""
    from laecips_core.algo.onnx_predictor import OnnxEdgePredictor

    return OnnxEdgePredictor(
        graphs.f,
        graphs.h,
        num_classes=int(graphs.metadata["num_classes"]),
        miner_in_size=state.miner_in_size(graphs.metadata),
        input_size=cfg.input_size,
        version=graphs.version,
    )


def _check_bundle_fits(cfg: EdgeConfig, metadata: Mapping[str, str], expected_version: int | None) -> None:
    name, num_classes, version = (
        metadata["model_name"],
        int(metadata["num_classes"]),
        int(metadata["version"]),
    )
    if name != cfg.edge_model_name or num_classes != cfg.num_classes:
        raise WeightsError(
            f"bundle is {name} with M={num_classes} but this node runs "
            f"{cfg.edge_model_name} with M={cfg.num_classes}: pick a matching bundle"
        )
    if expected_version is not None and version != expected_version:
        raise WeightsError(
            f"bundle metadata says version {version} but it was announced as {expected_version}"
        )


class ModelSlot:
    """The running f + h and at most one verified successor, swapped in between two frames.

    Any thread may ``offer`` a candidate; the inference thread calls ``swap`` before each frame, so
    a frame is always served by one consistent model (the paper's parameter update without stopping).
    """

    def __init__(self, first: ModelCandidate) -> None:
        self._lock = threading.Lock()
        self._current = first
        self._pending: ModelCandidate | None = None

    @property
    def current(self) -> ModelCandidate:
        """The model serving frames now."""
        return self._current

    def newest_version(self) -> int:
        """The highest version running or waiting to be swapped in."""
        return self.newest().version

    def newest(self) -> ModelCandidate:
        """The model of the highest version running or waiting to be swapped in (the running one on ties)."""
        with self._lock:
            pending = self._pending
            if pending is not None and pending.version > self._current.version:
                return pending
            return self._current

    def offer(self, candidate: ModelCandidate) -> None:
        """Queue a verified model (replacing one not yet swapped in)."""
        with self._lock:
            self._pending = candidate

    def swap(self) -> ModelCandidate | None:
        """Install the pending model, if any; returns it (None when nothing changed)."""
        with self._lock:
            candidate, self._pending = self._pending, None
            if candidate is not None:
                self._current = candidate
        return candidate


# ---------------------------------------------------------------------------------------- updates


def check_update(
    announcement: transport.ModelAnnouncement, slot: ModelSlot, *, allow_rollback: bool = False
) -> bool:
    """Whether an announced version is to be fetched: versions only go up.

    Args:
        announcement: Parsed announcement (its signature is checked by prepare_update).
        slot: The running model and its pending successor.
        allow_rollback: Take a lower version too (an operator's explicit choice).

    Returns:
        True to fetch it; False when it is the version already running or waiting, with the same sha256
        (a repeated announcement: nothing to do).

    Raises:
        WeightsError: a lower version (unless allow_rollback), or the same version with another sha256.
    """
    newest = slot.newest()
    if announcement.version == newest.version:
        if announcement.sha256 == newest.sha256:
            return False
        raise WeightsError(
            f"announced v{announcement.version} has sha256 {announcement.sha256[:12]}... but "
            f"v{newest.version} here has {newest.sha256[:12] or 'none'}: a version number is never reused "
            "for other weights"
        )
    if announcement.version < newest.version and not allow_rollback:
        raise WeightsError(
            f"announced v{announcement.version} is older than v{newest.version} here: versions only go up "
            "(an operator rolls back by setting edge_model.path)"
        )
    return True


def prepare_update(
    session: zenoh.Session,
    cfg: EdgeConfig,
    announcement: transport.ModelAnnouncement,
    *,
    max_bytes: int = transport.DEFAULT_MAX_BUNDLE_BYTES,
    allow_rollback: bool = False,
) -> ModelCandidate:
    """Fetch an announced bundle into the weight store, verify it and build the candidate to swap in.

    With a trusted key, the whole announcement must be signed for this robot (transport.fetch_into_store);
    the stored ``.sig`` (the signed announcement) is verified again when the file is loaded.

    Raises:
        WeightsError: refused (signature, uri, size, version order, hash, metadata) or not served.
        ConfigError: the weight store folder cannot be created.
    """
    path, _ = transport.fetch_into_store(
        session,
        cfg.robot_id,
        announcement,
        weight_store.WeightStore(cfg.weights_path),
        model_name=cfg.edge_model_name,
        num_classes=cfg.num_classes,
        public_key=cfg.trusted_public_key or None,
        timeout_s=cfg.update_timeout_s,
        max_bytes=max_bytes,
        allow_rollback=allow_rollback,
    )
    return load_candidate(
        cfg,
        path,
        origin="update",
        expected_sha256=announcement.sha256,
        expected_version=announcement.version,
    )


@dataclass(frozen=True)
class OperatorLoad:
    """An operator set edge_model.path at run time: a local bundle for the update worker to load.

    Verified like any bundle (load_candidate: sha256, signature, architecture, M); its version may be
    lower than the running one (a rollback is the operator's explicit choice).

    Attributes:
        path: The bundle file (checked by check_operator_path).
    """

    path: str


UpdateRequest = transport.ModelAnnouncement | OperatorLoad
"""What the edge's update worker takes: an announced update or an operator's bundle file."""


def check_operator_path(cfg: EdgeConfig, value: object) -> str:
    """The cheap checks of an edge_model.path set at run time; nothing is read but file metadata.

    Run on the parameter callback (the executor thread): the bundle itself is verified and loaded by
    the update worker (prepare_request), so camera callbacks never wait on it.

    Args:
        cfg: The running edge parameters (a trusted key requires a ``.sig`` beside the file).
        value: The new parameter value.

    Returns:
        The path, ``~`` expanded.

    Raises:
        ConfigError: not a string, empty, not a ``.safetensors`` file, cannot read it, or no ``.sig``
            while trusted_public_key is set; the message says what to give instead.
    """
    if not isinstance(value, str):
        raise ConfigError(f"edge_model.path must be a string (a bundle file), got {type(value).__name__}")
    if not value:
        raise ConfigError("edge_model.path cannot be emptied: give a bundle file to load")
    path = Path(value).expanduser()
    if path.suffix != ".safetensors":
        raise ConfigError(f"edge_model.path {value!r} is not a .safetensors bundle: give one")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"edge_model.path {value!r}: cannot read it (no such readable file)")
    signature = Path(f"{path}{signing.SIGNATURE_SUFFIX}")
    if cfg.trusted_public_key and not signature.is_file():
        raise ConfigError(
            f"edge_model.path {value!r} has no signature file {signature} and trusted_public_key is set: "
            "load a signed bundle (the node keeps one .sig per received version)"
        )
    return str(path)


def prepare_request(
    session: zenoh.Session | None, cfg: EdgeConfig, slot: ModelSlot, request: UpdateRequest
) -> ModelCandidate | None:
    """The update worker's step for one request: a verified candidate to offer to the slot.

    Args:
        session: The Zenoh session announced bundles are fetched over (None: not open yet).
        cfg: Edge parameters.
        slot: The running model and its pending successor (versions of announcements only go up).
        request: An announcement (check_update, then prepare_update) or an OperatorLoad (load_candidate).

    Returns:
        The candidate, or None for an announcement of the version already running or waiting.

    Raises:
        WeightsError: refused (see check_update, prepare_update, load_candidate) or no session yet.
    """
    if isinstance(request, OperatorLoad):
        return load_candidate(cfg, request.path, origin="operator")
    if not check_update(request, slot):
        return None
    if session is None:
        raise WeightsError(
            f"no Zenoh session yet to fetch v{request.version}; the latest announcement is asked for "
            "once it opens"
        )
    return prepare_update(session, cfg, request)

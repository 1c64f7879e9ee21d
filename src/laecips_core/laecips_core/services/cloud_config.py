"""The cloud node's parameters: the LVM, Algorithm 1's mask order, the f copies and the shared stores.

``CloudConfig`` / ``CLOUD_PARAMS``: one field and one descriptor per ROS parameter of
laecips_cloud.cloud_node, and the checks the descriptors cannot express.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laecips_core import transport
from laecips_core.algo.fusion import ORDERS
from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
from laecips_core.errors import ConfigError
from laecips_core.image_arrays import MAX_IMAGE_PIXELS
from laecips_core.lvm.registry import DEFAULT_LVM, lvm_registry
from laecips_core.services.params import (
    SERVER_EDGE_MODEL_PARAMS,
    ZENOH_PARAMS,
    ParamSpec,
    ZenohFields,
    check_choice,
    check_ranges,
    check_robot_ids,
    check_trusted_key,
)

DEFAULT_MAX_PIXELS = 640 * 480
"""Frames above this many pixels are downscaled before serving (CloudConfig.max_pixels)."""


# ----------------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class CloudConfig(ZenohFields):
    """Frozen parameters of the cloud node (one field per ROS parameter; dots become underscores).

    Attributes:
        robot_ids: Robots served; one queryable ``laecips/<robot_id>/infer`` each.
        zenoh_config: json5 Zenoh config file ("" = Zenoh defaults, peer mode).
        zenoh_mode: "peer", "client", "router" or "" (the file's).
        zenoh_listen: Endpoints to listen on, replacing the file's (empty = the file's).
        zenoh_connect: Endpoints to connect to, replacing the file's (empty = the file's).
        zenoh_open_timeout_s: How long to retry opening the session (a client needs its router).
        lvm: Large vision model (lvm_registry name: sam, litemedsam, felzenszwalb, slic).
        lvm_params: JSON object of the LVM builder's keyword arguments, e.g. '{"checkpoint": "sam.pth"}'.
        edge_model_name: Registry name of f; the bundles must name the same.
        edge_model_path: Bundle the robots' edges start from; seeds an empty weight store.
        num_classes: M (0 = the bundle's).
        input_height: Height f runs at (pixels; 0 = the image's). Must equal the edge's setting.
        input_width: Width f runs at (pixels; 0 = the image's). Must equal the edge's setting.
        weights_dir: Root of the per-robot WeightStores (shared with the trainer node).
        replay_dir: Root of the per-robot replay buffers (shared with the trainer node).
        replay_maxsize: Most samples kept per robot's buffer (oldest dropped beyond).
        max_request_bytes: Largest JPEG accepted (bytes).
        workers: Worker threads (each with its own LVM instance).
        queue_size: Requests of ONE robot waiting for a worker; more are answered "busy" at once. Each
            robot has its own queue and the workers serve the robots round-robin (fairqueue.FairQueue),
            so one robot's flood cannot starve another.
        max_queue_wait_s: Requests that waited longer are answered "expired" (the edge gave up).
        fusion_order: Mask order of Algorithm 1: "area" (largest first) or "input".
        trusted_public_key: Ed25519 key (PEM) announcements must be signed with to be fetched. Required
            unless ``allow_unsigned_weights`` (the node refuses to start without either).
        allow_unsigned_weights: INSECURE, demos on a closed network only: run without
            ``trusted_public_key`` and store any announced bundle whose sha256 matches.
        max_pixels: Largest frame served at full size (pixels); a larger frame is DOWNSCALED (aspect kept,
            libjpeg's DCT scaling) before f, the LVM and Algorithm 1 run, and the fused labels are scaled
            back (nearest) to the request's size; the replay buffer keeps the downscaled sample. This
            bounds the cost of every request whatever the robot sends.
        fetch_timeout_s: Deadline of fetching an announced bundle (seconds).
        diagnostics_period_s: Period of /diagnostics (seconds).
    """

    robot_ids: tuple[str, ...] = ("robot1",)
    lvm: str = DEFAULT_LVM
    lvm_params: str = "{}"
    edge_model_name: str = DEFAULT_EDGE_MODEL
    edge_model_path: str = ""
    num_classes: int = 0
    input_height: int = 0
    input_width: int = 0
    weights_dir: str = "runs/cloud/weights"
    replay_dir: str = "runs/cloud/replay"
    replay_maxsize: int = 1000
    max_request_bytes: int = transport.DEFAULT_MAX_REQUEST_BYTES
    workers: int = 1
    queue_size: int = 8
    max_queue_wait_s: float = 10.0
    fusion_order: str = "area"
    trusted_public_key: str = ""
    allow_unsigned_weights: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    fetch_timeout_s: float = 30.0
    diagnostics_period_s: float = 1.0

    def validate(self) -> CloudConfig:
        """Check choices and cross-field rules the descriptors cannot express.

        Returns:
            self, for chaining.

        Raises:
            ConfigError: naming the parameter and what is allowed.
        """
        check_robot_ids(self.robot_ids)
        self.check_zenoh()
        # the oracle LVM reads ground truth: an evaluation upper bound, never a live cloud
        check_choice("lvm", self.lvm, sorted(set(lvm_registry) - {"oracle"}))
        self.lvm_kwargs()
        check_choice("fusion_order", self.fusion_order, ORDERS)
        if (self.input_height == 0) != (self.input_width == 0):
            raise ConfigError(
                "set both input_height and input_width (pixels), or both to 0 for the image size"
            )
        if self.edge_model_path and not Path(self.edge_model_path).expanduser().is_file():
            raise ConfigError(
                f"edge_model.path {self.edge_model_path!r} does not exist: give the edge's bundle"
            )
        if self.trusted_public_key and not Path(self.trusted_public_key).expanduser().is_file():
            raise ConfigError(f"trusted_public_key {self.trusted_public_key!r} does not exist")
        check_trusted_key("cloud", self.trusted_public_key, self.allow_unsigned_weights)
        if not self.weights_dir or not self.replay_dir:
            raise ConfigError("weights_dir and replay_dir must be folders (they are shared with the trainer)")
        check_ranges(self, CLOUD_PARAMS)
        return self

    def lvm_kwargs(self) -> dict[str, Any]:
        """lvm_params parsed as a JSON object (raises ConfigError)."""
        try:
            kwargs = json.loads(self.lvm_params or "{}")
        except json.JSONDecodeError as err:
            raise ConfigError(f"parameter lvm_params is not JSON: {err}; e.g. '{{\"scale\": 100}}'") from err
        if not isinstance(kwargs, dict):
            raise ConfigError("parameter lvm_params must be a JSON object of the LVM's keyword arguments")
        return kwargs

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) f runs at, or None for each image's own size."""
        return (self.input_height, self.input_width) if self.input_height else None


CLOUD_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("robot_ids", "robot_ids", "robots served, one Zenoh queryable laecips/<robot_id>/infer each"),
    *ZENOH_PARAMS,
    ParamSpec("lvm", "lvm", "large vision model: sam, litemedsam, felzenszwalb or slic"),
    ParamSpec("lvm_params", "lvm_params", 'JSON object of LVM keyword arguments, e.g. {"checkpoint": ...}'),
    *SERVER_EDGE_MODEL_PARAMS,
    ParamSpec("num_classes", "num_classes", "M, number of classes (0 = the bundle's)", 0, 65535),
    ParamSpec("input_height", "input_height", "height f runs at, as on the edge (0 = image's)", 0, 8192),
    ParamSpec("input_width", "input_width", "width f runs at, as on the edge (0 = image's)", 0, 8192),
    ParamSpec("weights_dir", "weights_dir", "root of the per-robot weight stores (shared with the trainer)"),
    ParamSpec("replay_dir", "replay_dir", "root of the per-robot replay buffers (shared with the trainer)"),
    ParamSpec("replay_maxsize", "replay_maxsize", "most samples kept per replay buffer", 1, 10**7),
    ParamSpec("max_request_bytes", "max_request_bytes", "largest JPEG accepted (bytes)", 1024, 2**30, True),
    ParamSpec("workers", "workers", "worker threads, each with its own LVM", 1, 64),
    ParamSpec("queue_size", "queue_size", "requests per robot waiting for a worker (more: 'busy')", 1, 1024),
    ParamSpec(
        "max_queue_wait_s",
        "max_queue_wait_s",
        "answer 'expired' after waiting this long (s)",
        0.01,
        3600.0,
        True,
    ),
    ParamSpec("fusion_order", "fusion_order", "Algorithm 1 mask order: area or input", mutable=True),
    ParamSpec(
        "trusted_public_key", "trusted_public_key", "Ed25519 PEM key announcements must be signed with"
    ),
    ParamSpec(
        "allow_unsigned_weights",
        "allow_unsigned_weights",
        "INSECURE (demos only): start without trusted_public_key and store unsigned bundles",
    ),
    ParamSpec(
        "max_pixels",
        "max_pixels",
        "larger frames are downscaled to this many pixels before f, the LVM and fusion",
        4096,
        MAX_IMAGE_PIXELS,
        True,
    ),
    ParamSpec(
        "fetch_timeout_s", "fetch_timeout_s", "deadline of fetching announced weights (s)", 0.1, 3600.0
    ),
    ParamSpec("diagnostics_period_s", "diagnostics_period_s", "period of /diagnostics (s)", 0.05, 3600.0),
)

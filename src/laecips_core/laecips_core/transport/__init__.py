"""Edge-cloud transport of LAECIPS over Zenoh (Algorithm 2's upload and the model-update push).

Modules: ``config`` (Zenoh config, TLS/ACL, sessions), ``keys`` (key expressions), ``wire`` (the
InferRequest/InferReply schema, no Zenoh import), ``client`` (the edge's CloudClient), ``announcement``
(model-update announcements and their signatures), ``updates`` (publishing, listening, fetching).

Every public name is re-exported here, imported on first use (PEP 562), so ``transport.X`` works for
all of them and ``import laecips_core.transport.wire`` does not import Zenoh.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from laecips_core.transport.announcement import (
        ModelAnnouncement,
        sign_announcement,
        verify_announcement,
    )
    from laecips_core.transport.client import (
        SILENT_FRACTION,
        CloudClient,
        CloudLink,
        error_text,
    )
    from laecips_core.transport.config import (
        config_endpoints,
        find_config,
        load_zenoh_config,
        open_session,
        wait_until,
    )
    from laecips_core.transport.keys import infer_key, update_key, validate_robot_id, weights_key
    from laecips_core.transport.updates import (
        DEFAULT_MAX_BUNDLE_BYTES,
        AnnouncementListener,
        ModelPublication,
        fetch_into_store,
        fetch_weights,
        publish_model,
        query_latest_announcement,
    )
    from laecips_core.transport.wire import (
        CLIENT_STATUSES,
        DEFAULT_MAX_REQUEST_BYTES,
        MAX_ATTACHMENT_BYTES,
        MAX_ERROR_CHARS,
        MAX_MODEL_VERSION,
        MAX_NUM_CLASSES,
        STATUS_ERROR,
        STATUS_INVALID,
        STATUS_OK,
        STATUS_TIMEOUT,
        STATUS_UNREACHABLE,
        WIRE_STATUSES,
        WIRE_VERSION,
        InferReply,
        InferRequest,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    "announcement": ("ModelAnnouncement", "sign_announcement", "verify_announcement"),
    "client": ("SILENT_FRACTION", "CloudClient", "CloudLink", "error_text"),
    "config": ("config_endpoints", "find_config", "load_zenoh_config", "open_session", "wait_until"),
    "keys": ("infer_key", "update_key", "validate_robot_id", "weights_key"),
    "updates": (
        "DEFAULT_MAX_BUNDLE_BYTES",
        "AnnouncementListener",
        "ModelPublication",
        "fetch_into_store",
        "fetch_weights",
        "publish_model",
        "query_latest_announcement",
    ),
    "wire": (
        "CLIENT_STATUSES",
        "DEFAULT_MAX_REQUEST_BYTES",
        "MAX_ATTACHMENT_BYTES",
        "MAX_ERROR_CHARS",
        "MAX_MODEL_VERSION",
        "MAX_NUM_CLASSES",
        "STATUS_ERROR",
        "STATUS_INVALID",
        "STATUS_OK",
        "STATUS_TIMEOUT",
        "STATUS_UNREACHABLE",
        "WIRE_STATUSES",
        "WIRE_VERSION",
        "InferReply",
        "InferRequest",
    ),
}
_MODULE_OF: dict[str, str] = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "AnnouncementListener",
    "CLIENT_STATUSES",
    "CloudClient",
    "CloudLink",
    "DEFAULT_MAX_BUNDLE_BYTES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "InferReply",
    "InferRequest",
    "MAX_ATTACHMENT_BYTES",
    "MAX_ERROR_CHARS",
    "MAX_MODEL_VERSION",
    "MAX_NUM_CLASSES",
    "ModelAnnouncement",
    "ModelPublication",
    "SILENT_FRACTION",
    "STATUS_ERROR",
    "STATUS_INVALID",
    "STATUS_OK",
    "STATUS_TIMEOUT",
    "STATUS_UNREACHABLE",
    "WIRE_STATUSES",
    "WIRE_VERSION",
    "config_endpoints",
    "error_text",
    "fetch_into_store",
    "fetch_weights",
    "find_config",
    "infer_key",
    "load_zenoh_config",
    "open_session",
    "publish_model",
    "query_latest_announcement",
    "sign_announcement",
    "update_key",
    "validate_robot_id",
    "verify_announcement",
    "wait_until",
    "weights_key",
]


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first use and cache the name here."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

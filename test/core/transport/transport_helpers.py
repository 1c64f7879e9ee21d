"""Shared helpers of the transport tests: a small frame, a valid request, headers, labels, announcements."""

from __future__ import annotations

import base64
import json

import numpy as np
import zenoh
from laecips_core.image_codecs import encode_jpeg
from laecips_core.transport import InferReply, InferRequest, ModelAnnouncement, infer_key

H, W, M = 24, 32, 5


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _request(**changes: object) -> InferRequest:
    fields: dict[str, object] = {
        "robot_id": "robot1",
        "frame_id": 7,
        "stamp": 12.5,
        "model_version": 3,
        "num_classes": M,
        "width": W,
        "height": H,
        "jpeg": encode_jpeg(_image()),
    }
    fields.update(changes)
    return InferRequest(**fields)  # type: ignore[arg-type]


def _header(**changes: object) -> bytes:
    _, attachment = _request().encode()
    header = json.loads(attachment)
    header.update(changes)
    for key in [k for k, v in changes.items() if v is _DROP]:
        del header[key]
    return json.dumps(header).encode()


_DROP = object()


def _labels(dtype: type = np.uint8, hi: int = M) -> np.ndarray:
    return np.random.default_rng(1).integers(0, hi, (H, W)).astype(dtype)


def _announcement(data: bytes, version: int = 1, **changes: object) -> ModelAnnouncement:
    import hashlib

    fields: dict[str, object] = {
        "version": version,
        "sha256": hashlib.sha256(data).hexdigest(),
        "uri": "",
        "signer": "test",
        "signature": base64.b64encode(b"s" * 64).decode(),
        "model_name": "tiny_fcn",
        "num_classes": M,
        "stamp": 1.5,
    }
    fields.update(changes)
    return ModelAnnouncement(**fields)  # type: ignore[arg-type]


def _serve_fused(cloud: zenoh.Session, robot: str, transform: object = None) -> zenoh.Queryable:
    """A queryable that decodes the request and replies labels derived from the image (or transform's)."""

    def on_query(query: zenoh.Query) -> None:
        req = InferRequest.decode(query.payload.to_bytes(), query.attachment.to_bytes())
        labels = (req.rgb()[..., 0] % req.num_classes).astype(np.uint8)
        reply = InferReply("ok", "", req.frame_id, req.model_version, 3, 0.01, 0.001, 0.02, labels)
        if transform is not None:
            reply = transform(reply)  # type: ignore[operator]
        payload, attachment = reply.encode()
        query.reply(query.key_expr, payload, attachment=attachment)

    return cloud.declare_queryable(infer_key(robot), on_query)

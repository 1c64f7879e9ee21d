"""A controllable cloud for two edge tests: a Zenoh queryable (wire format v1), fixed delay, optional lies.

The real cloud_node has no parameter to add a reply delay, and the newest-wins / max_in_flight test needs a
link slower than the camera by a known amount and a count of overlapping requests. The lying-cloud test
needs a cloud that sends the replies a real cloud never sends (--lies, see LIES). Every other edge test runs
the real cloud_node (and trainer_node) instead.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

import numpy as np
import zenoh
import zstandard
from laecips_core.errors import WireFormatError
from laecips_core.image_codecs import LABELS_MAGIC, encode_labels

from laecips_core import transport

LATE_S = 6.0
"""How long a 'late' lie waits before its (good) reply: past the lying-cloud test's 5 s deadline."""

BOMB_BYTES = 200 * 2**20
"""What a 'zstd-bomb' lie's label body inflates to (a frame without a declared content size)."""

LIES = {
    "nested": "a reply header of 8000 nested '['",
    "binary-error": "an error reply that is not UTF-8",
    "garbage": "random bytes as header and body",
    "wrong-size": "labels one row taller than the frame",
    "out-of-range": "label 200 (the edge has 16 classes)",
    "zstd-bomb": "a label body that inflates to 200 MB",
    "late": f"a good reply {LATE_S:g} s later, after the deadline",
    "wrong-frame": "labels for another frame id",
    "negative": "int32 labels of -1",
}
"""Every kind of bad reply the --lies option can send, as the issue-10 attack listed them."""


def _zstd_bomb(height: int, width: int) -> bytes:
    """A label payload with a valid header whose zstd body (no content size) inflates to BOMB_BYTES."""
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=False).compressobj()
    zeros = bytes(2**20)
    body = b"".join(compressor.compress(zeros) for _ in range(BOMB_BYTES // len(zeros)))
    header = LABELS_MAGIC + bytes([1, 0, 0, 0]) + height.to_bytes(4, "little") + width.to_bytes(4, "little")
    return header + body + compressor.flush()


def _lie(query: zenoh.Query, key: str, lie: str, request: transport.InferRequest, label: int) -> None:
    """Send the bad reply `lie` (one of LIES) to `request`."""
    height, width = request.height, request.width
    ok = transport.InferReply("ok", frame_id=request.frame_id, labels=np.zeros((1, 1), np.uint8))
    header = ok.encode()[1]  # a well-formed header for the bad bodies
    if lie == "nested":
        query.reply(key, b"", attachment=b"[" * 8000)
    elif lie == "binary-error":
        query.reply_err(b"\xff\xfe\xc3 cloud overloaded")
    elif lie == "garbage":
        rng = np.random.default_rng(request.frame_id)
        query.reply(key, rng.bytes(4000), attachment=rng.bytes(300))
    elif lie == "wrong-size":
        query.reply(key, encode_labels(np.full((height + 1, width), label, np.uint8)), attachment=header)
    elif lie == "out-of-range":
        query.reply(key, encode_labels(np.full((height, width), 200, np.uint8)), attachment=header)
    elif lie == "zstd-bomb":
        query.reply(key, _zstd_bomb(height, width), attachment=header)
    elif lie == "negative":
        query.reply(key, encode_labels(np.full((height, width), -1, np.int32)), attachment=header)
    else:  # late, wrong-frame: well-formed labels
        frame_id = request.frame_id + 1 if lie == "wrong-frame" else request.frame_id
        if lie == "late":
            time.sleep(LATE_S)
        labels = np.full((height, width), label, np.uint8)
        body, head = transport.InferReply("ok", frame_id=frame_id, labels=labels).encode()
        query.reply(key, body, attachment=head)


def main() -> int:
    """Serve ``laecips/<robot>/infer``: every pixel gets --label; --delay-s before each reply.

    Prints one JSON line per request ({"frame_id", "in_flight"}) so tests can check what reached the
    cloud and how many requests overlapped. Runs until SIGINT/SIGTERM or --max-s seconds.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True, help="router endpoint, e.g. tcp/127.0.0.1:7447")
    parser.add_argument("--robot-id", default="r1")
    parser.add_argument("--label", type=int, default=7)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--max-s", type=float, default=300.0)
    parser.add_argument(
        "--lies",
        default="",
        help="comma-separated bad replies for the first requests, in order ("
        + "; ".join(f"'{name}': {what}" for name, what in LIES.items())
        + "); later requests are answered well",
    )
    args = parser.parse_args()
    lies = [lie for lie in args.lies.split(",") if lie]
    if set(lies) - set(LIES):
        parser.error(f"unknown lies {sorted(set(lies) - set(LIES))}; known: {sorted(LIES)}")

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    in_flight = [0]

    def serve(query: zenoh.Query) -> None:
        payload = query.payload.to_bytes() if query.payload is not None else None
        attachment = query.attachment.to_bytes() if query.attachment is not None else None
        with lock:
            in_flight[0] += 1
            now = in_flight[0]
            lie = lies.pop(0) if lies else ""
        try:
            request = transport.InferRequest.decode(payload, attachment)
            rgb = request.rgb()
            print(json.dumps({"frame_id": request.frame_id, "in_flight": now, "lie": lie}), flush=True)
            if lie:  # the finally below still counts this request out
                _lie(query, transport.infer_key(args.robot_id), lie, request, args.label)
                query.drop()
                return
            time.sleep(args.delay_s)
            labels = np.full(rgb.shape[:2], args.label, dtype=np.uint8)
            reply = transport.InferReply(
                status="ok",
                frame_id=request.frame_id,
                model_version=request.model_version,
                num_masks=1,
                cloud_s=args.delay_s,
                labels=labels,
            )
        except WireFormatError as err:
            reply = transport.InferReply(status="error", error=str(err))
        finally:
            with lock:
                in_flight[0] -= 1
        body, header = reply.encode()
        query.reply(transport.infer_key(args.robot_id), body, attachment=header)
        query.drop()

    def on_query(query: zenoh.Query) -> None:
        # One thread per request, so overlapping requests from the edge overlap here too.
        threading.Thread(target=serve, args=(query,), daemon=True).start()

    config = transport.load_zenoh_config(mode="client", connect=[args.connect])
    with zenoh.open(config) as session:
        queryable = session.declare_queryable(transport.infer_key(args.robot_id), on_query)
        print(json.dumps({"ready": True}), flush=True)
        stop.wait(args.max_s)
        queryable.undeclare()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A controllable cloud for two edge tests: a Zenoh queryable (wire format v1), fixed delay, optional lies.

The real cloud_node has no parameter to add a reply delay, and the newest-wins / max_in_flight test needs a
link slower than the camera by a known amount and a count of overlapping requests. The lying-cloud test
needs a cloud that sends the replies a real cloud never sends (--lies): a header of 8000 nested "[", an
error reply that is not UTF-8. Every other edge test runs the real cloud_node (and trainer_node) instead.
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
from laecips_core.errors import WireFormatError

from laecips_core import transport


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
        help="comma-separated bad replies for the first requests, in order: 'nested' (a header of 8000 '['), "
        "'binary-error' (an error reply that is not UTF-8); later requests are answered well",
    )
    args = parser.parse_args()
    lies = [lie for lie in args.lies.split(",") if lie]
    if set(lies) - {"nested", "binary-error"}:
        parser.error(f"unknown lies {sorted(set(lies) - {'nested', 'binary-error'})}")

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
                if lie == "nested":
                    query.reply(transport.infer_key(args.robot_id), b"", attachment=b"[" * 8000)
                else:
                    query.reply_err(b"\xff\xfe\xc3 cloud overloaded")
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

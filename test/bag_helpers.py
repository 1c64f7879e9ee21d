"""Test helper without ROS: rosbags sensor_msgs/msg/Image messages from arrays, for bags written by hand
(foreign encodings such as bgr8 and mono16, other topics), as another recorder would write them."""

from __future__ import annotations

from typing import Any

import numpy as np


def raw_image(
    typestore: Any, stamp_ns: int, pixels: np.ndarray, encoding: str, frame_id: str = "front"
) -> Any:
    """A rosbags ``sensor_msgs/msg/Image`` of ``pixels`` ((H, W) or (H, W, C), any dtype; its bytes in row
    order as they are in memory), stamped ``stamp_ns`` nanoseconds; step is the bytes of one row."""
    types = typestore.types
    data = np.ascontiguousarray(pixels)
    height, width = data.shape[:2]
    flat = data.view(np.uint8).reshape(-1)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
        frame_id=frame_id,
    )
    return types["sensor_msgs/msg/Image"](
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=flat.size // height,
        data=flat,
    )

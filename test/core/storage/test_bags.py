"""rosbag2 round trips of storage.bags: benchmark bags, compressed images, bags made by others."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from bag_helpers import raw_image
from laecips_core.errors import BagError
from laecips_core.storage import bags
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from laecips_core import benchmark as data

TINY = data.BenchmarkConfig(seed=3, frames_per_task=2, width=40, height=32, num_tasks=3)


@pytest.fixture(scope="module")
def stream() -> list[data.Frame]:
    return list(data.generate_stream(TINY))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_benchmark_bag_round_trip_is_exact(tmp_path, stream, storage):
    path = bags.write_benchmark_bag(tmp_path / "bag", TINY, storage=storage, progress=False)
    info = bags.inspect_bag(path)
    assert info.class_names == list(data.CLASSES)
    assert info.topics["/camera/image_raw"] == bags.TopicSummary("sensor_msgs/msg/Image", 6)
    assert info.topics["/camera/labels"].count == 6
    assert info.topics["/laecips/task"].msgtype == "std_msgs/msg/UInt8"
    frames = list(bags.read_bag_frames(path, label_topic="/camera/labels", task_topic="/laecips/task"))
    assert len(frames) == len(stream)
    for got, want in zip(frames, stream, strict=True):
        assert got.index == want.index
        assert got.task_id == want.task_id
        assert got.timestamp == pytest.approx(want.timestamp, abs=1e-9)
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.labels, want.labels)


def test_compressed_bag_decodes_jpeg_and_keeps_labels_exact(tmp_path, stream):
    path = bags.write_benchmark_bag(tmp_path / "bag", TINY, compressed=True, jpeg_quality=95, progress=False)
    assert bags.inspect_bag(path).topics["/camera/image_raw"].msgtype == "sensor_msgs/msg/CompressedImage"
    frames = list(bags.read_bag_frames(path, label_topic="/camera/labels", task_topic="/laecips/task"))
    assert [f.task_id for f in frames] == [f.task_id for f in stream]
    for got, want in zip(frames, stream, strict=True):
        assert got.image.shape == want.image.shape and got.image.dtype == np.uint8
        err = np.abs(got.image.astype(np.int16) - want.image.astype(np.int16)).mean()
        assert err < 12, f"JPEG q95 should be close to the original, mean abs error {err:.1f}"
        np.testing.assert_array_equal(got.labels, want.labels)


def test_int32_task_topic_and_max_frames(tmp_path, stream):
    path = bags.write_benchmark_bag(tmp_path / "bag", TINY, task_type="int32", progress=False)
    assert bags.inspect_bag(path).topics["/laecips/task"].msgtype == "std_msgs/msg/Int32"
    frames = list(bags.read_bag_frames(path, task_topic="/laecips/task", max_frames=3))
    assert [f.task_id for f in frames] == [0, 0, 1]
    assert all(f.labels is None for f in frames)  # no label topic asked for


def _foreign_bag(tmp_path, *, with_png: bool = False):
    """A bag 'recorded elsewhere': other topic names, bgr8 camera, mono16 labels, 7 classes, 37x29,
    label messages recorded BEFORE their image, one image without a label, no task or class topics."""
    ts = get_typestore(Stores.ROS2_KILTED)
    Compressed = ts.types["sensor_msgs/msg/CompressedImage"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    rng = np.random.default_rng(0)
    h, w = 29, 37
    truth = []
    path = tmp_path / "foreign"
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        cam_type = "sensor_msgs/msg/CompressedImage" if with_png else "sensor_msgs/msg/Image"
        cam = writer.add_connection("/robot/front/image", cam_type, typestore=ts)
        gt = writer.add_connection("/robot/front/semantic", "sensor_msgs/msg/Image", typestore=ts)
        for i in range(6):
            stamp = 1_700_000_000_000_000_000 + i * 250_000_000  # 4 Hz, epoch time
            header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="front")
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            labels = rng.integers(0, 7, (h, w)).astype(np.uint16)
            labels[0, 0] = 255  # ignore pixel survives
            if i != 4:
                lab_msg = raw_image(ts, stamp, labels.astype("<u2"), "mono16")
                writer.write(gt, stamp, ts.serialize_cdr(lab_msg, "sensor_msgs/msg/Image"))
            if with_png:
                from PIL import Image as PilImage

                buf = io.BytesIO()
                PilImage.fromarray(rgb).save(buf, format="PNG")
                msg = Compressed(
                    header=header, format="rgb8; png compressed", data=np.frombuffer(buf.getvalue(), np.uint8)
                )
            else:
                msg = raw_image(ts, stamp, rgb[:, :, ::-1], "bgr8")
            writer.write(cam, stamp + 1_000_000, ts.serialize_cdr(msg, cam_type))
            truth.append((rgb, None if i == 4 else labels))
    return path, truth


@pytest.mark.parametrize("with_png", [False, True])
def test_foreign_bag_bgr8_mono16_boundaries_and_missing_label(tmp_path, with_png):
    path, truth = _foreign_bag(tmp_path, with_png=with_png)
    info = bags.inspect_bag(path)
    assert info.class_names is None
    frames = list(
        bags.read_bag_frames(
            path,
            "/robot/front/image",
            label_topic="/robot/front/semantic",
            task_boundaries=[0.6, 1.1],
        )
    )
    assert len(frames) == 6
    # Log times are 0, .25, .5, .75, 1.0, 1.25 s after the first message (+1 ms for the image).
    assert [f.task_id for f in frames] == [0, 0, 0, 1, 1, 2]
    for got, (rgb, labels) in zip(frames, truth, strict=True):
        np.testing.assert_array_equal(got.image, rgb)  # bgr8 / png converted to RGB
        if labels is None:
            assert got.labels is None
        else:
            np.testing.assert_array_equal(got.labels, labels)
    assert frames[1].timestamp == pytest.approx(1_700_000_000.25)


def test_task_from_topic_uses_last_message_at_or_before_the_frame(tmp_path):
    ts = get_typestore(Stores.ROS2_KILTED)
    Int32 = ts.types["std_msgs/msg/Int32"]
    path = tmp_path / "tasks"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        cam = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=ts)
        task = writer.add_connection("/phase", "std_msgs/msg/Int32", typestore=ts)
        for t, value in ((150, 7), (350, 9)):  # task messages only when the phase changes
            writer.write(task, t, ts.serialize_cdr(Int32(data=value), "std_msgs/msg/Int32"))
        for i in range(5):
            stamp = 100 * (i + 1)
            msg = raw_image(ts, stamp, np.full((8, 8), i, np.uint8), "mono8", frame_id="")
            writer.write(cam, stamp, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    frames = list(bags.read_bag_frames(path, "/cam", task_topic="/phase"))
    # Frame at 100 ns precedes every task message: it takes the first one (7).
    assert [f.task_id for f in frames] == [7, 7, 7, 9, 9]
    assert frames[2].image.shape == (8, 8, 3) and int(frames[2].image[0, 0, 0]) == 2


def test_errors_name_what_to_do(tmp_path):
    path = bags.write_benchmark_bag(tmp_path / "bag", TINY, progress=False)
    with pytest.raises(BagError, match="exists already"):
        bags.write_benchmark_bag(path, TINY, progress=False)
    with pytest.raises(BagError, match=r"no camera topic '/nope'.*'/camera/image_raw'"):
        list(bags.read_bag_frames(path, "/nope"))
    with pytest.raises(BagError, match="label topic '/laecips/task' has type std_msgs/msg/UInt8"):
        list(bags.read_bag_frames(path, label_topic="/laecips/task"))
    with pytest.raises(BagError, match="not both"):
        list(bags.read_bag_frames(path, task_topic="/laecips/task", task_boundaries=[1.0]))
    with pytest.raises(BagError, match="does not exist"):
        bags.inspect_bag(tmp_path / "missing")
    with pytest.raises(BagError, match="storage"):
        bags.write_benchmark_bag(tmp_path / "x", TINY, storage="rosbag1", progress=False)  # type: ignore[arg-type]


def test_classes_metadata_is_json_and_latched(tmp_path):
    path = bags.write_benchmark_bag(tmp_path / "bag", TINY, progress=False)
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        conn = next(c for c in reader.connections if c.topic == "/laecips/classes")
        qos = conn.ext.offered_qos_profiles
        assert qos and qos[0].durability.name == "TRANSIENT_LOCAL"
        (_, stamp, raw), *rest = list(reader.messages(connections=[conn]))
        assert not rest and stamp == 0
        meta = json.loads(reader.deserialize(raw, conn.msgtype).data)
    assert meta["num_classes"] == len(data.CLASSES)
    assert meta["benchmark"]["frames_per_task"] == 2


def test_parse_task_boundaries():
    assert bags.parse_task_boundaries("30, 60.5,90") == [30.0, 60.5, 90.0]
    for bad in ("a,b", "5,3", "-1,2", "2,2"):
        with pytest.raises(BagError):
            bags.parse_task_boundaries(bad)

"""The trainer node as a real process: Algorithm 2 trigger, training process, signed Zenoh/ROS updates."""

from __future__ import annotations

import json
import queue
import time

import numpy as np
import pytest
from cloud_harness import NUM_CLASSES, write_params
from diagnostic_msgs.msg import DiagnosticArray
from laecips_core.services.stores import replay_path, reports_dir, store_dir
from laecips_core.storage.bundle_loading import parse_bundle
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.storage.signing import generate_keypair, verify_digest
from laecips_core.storage.weight_store import WeightStore
from laecips_core.transport import (
    ModelAnnouncement,
    fetch_weights,
    load_zenoh_config,
    open_session,
    update_key,
    verify_announcement,
)
from launch_helpers import REPO_ROOT, ProcessGroup, free_port, ros_env, wait_until, zenoh_endpoint
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from laecips_msgs.msg import ModelUpdate

pytestmark = pytest.mark.slow
UPDATE_TOPIC = "/trainer_node/model_update"


def _fill(buffer: ReplayBuffer, count: int, start: int) -> None:
    """Append learnable samples: dark left half = class 1, bright right half = class 2."""
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        image = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
        image[:, 32:] += 180
        labels = np.ones((48, 64), np.uint8)
        labels[:, 32:] = 2
        buffer.append(image, labels, robot_id="robot1", timestamp=float(i), model_version=0)


def _diag(msg: DiagnosticArray) -> dict[str, str]:
    for status in msg.status:
        if status.name.endswith("robot1") and "trainer" in status.name:
            return {kv.key: kv.value for kv in status.values}
    return {}


def _set_parameter(listener, name: str, value: float) -> bool:
    client = listener.node.create_client(SetParameters, "/trainer_node/set_parameters")
    assert client.wait_for_service(timeout_sec=20.0)
    request = SetParameters.Request()
    request.parameters = [
        ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
    ]
    future = client.call_async(request)
    assert wait_until(future.done, 20.0)
    return bool(future.result().results[0].successful)


def test_trains_when_the_buffer_fills_and_publishes_signed_weights(
    tmp_path, initial_bundle, domain_id, ros_listener
):
    priv, pub = generate_keypair(tmp_path / "keys", name="test")
    replay, weights = tmp_path / "replay", tmp_path / "weights"
    buffer = ReplayBuffer(replay_path(replay, "robot1"))
    _fill(buffer, 3, 0)  # not more than maxsize: no training yet
    endpoint = zenoh_endpoint(free_port())
    session = open_session(load_zenoh_config(None, mode="peer", listen=[endpoint]))
    announcements: queue.Queue[bytes] = queue.Queue()
    session.declare_subscriber(update_key("robot1"), lambda s: announcements.put(s.payload.to_bytes()))
    latched = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
    ros_listener.listen(ModelUpdate, UPDATE_TOPIC, latched)
    ros_listener.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=100))
    params = write_params(
        tmp_path / "trainer.yaml",
        "trainer_node",
        {
            "robot_ids": ["robot1"], "zenoh_mode": "peer", "zenoh_connect": [endpoint],
            "replay_dir": str(replay), "weights_dir": str(weights),
            "edge_model.name": "tiny_fcn", "edge_model.path": str(initial_bundle),
            "signing_key": str(priv), "signer": "test-signer",
            "maxsize": 4, "epochs": 2, "lr": 0.01, "batch_size": 4, "input_height": 32, "input_width": 32,
            "check_period_s": 0.5, "train_threads": 1, "diagnostics_period_s": 0.5,
        },
    )  # fmt: skip
    shipped = REPO_ROOT / "src" / "laecips_bringup" / "config" / "trainer.yaml"
    argv = ["-m", "laecips_cloud.trainer_node", "--ros-args", "--params-file", str(shipped),
            "--params-file", str(params)]  # fmt: skip
    try:
        with ProcessGroup(tmp_path / "logs", timeout_s=400) as group:
            proc = group.start_python("trainer", argv, env=ros_env(domain_id))
            idle = ros_listener.wait_for("/diagnostics", lambda m: _diag(m).get("replay_size") == "3", 90.0)
            assert idle is not None, group.logs()
            assert _diag(idle)["jobs_started"] == "0" and announcements.empty()

            _fill(buffer, 3, 3)  # 6 > maxsize: Algorithm 2 trains
            ann = ModelAnnouncement.from_json(announcements.get(timeout=180))
            assert ann.version == 1 and ann.signer == "test-signer" and ann.model_name == "tiny_fcn"
            verify_announcement(ann, "robot1", pub)  # signed over every field, for this robot
            data = fetch_weights(session, "robot1", ann, timeout_s=10.0)
            record = ann.signature_record("robot1")  # what an edge keeps beside the bundle
            bundle = parse_bundle(data, expected_sha256=ann.sha256, public_key=pub, signature=record)
            assert bundle.version == 1 and bundle.num_classes == NUM_CLASSES and bundle.h_state
            store = WeightStore(store_dir(weights, "robot1"))
            assert store.versions() == [0, 1]  # the previous version is kept
            sidecar = store.path(1).with_name(store.path(1).name + ".sig")
            verify_digest(pub, ann.sha256, sidecar.read_text())
            report = json.loads((reports_dir(weights, "robot1") / "v00000001.json").read_text())
            assert report["accepted"] and report["loss_f"] and report["loss_h"]
            assert (reports_dir(weights, "robot1") / "v00000001.png").stat().st_size > 0
            update = ros_listener.wait_for(UPDATE_TOPIC, lambda m: m.version == 1, 30.0)
            assert update is not None and update.sha256 == ann.sha256 and update.signature == ann.signature
            assert update.uri == ann.uri and update.num_classes == NUM_CLASSES
            assert wait_until(lambda: len(buffer) == 0, 20.0), "trained samples were not cleared"

            # an impossible gate: the next update is refused, logged, and not published
            assert _set_parameter(ros_listener, "min_improvement", 1.0)
            assert not _set_parameter(ros_listener, "min_improvement", 5.0)  # outside its range
            _fill(buffer, 6, 100)
            refused = reports_dir(weights, "robot1")
            assert wait_until(lambda: any(refused.glob("refused_*.json")), 180.0), group.logs()
            assert wait_until(lambda: len(buffer) == 0, 20.0)
            time.sleep(1.0)
            assert announcements.empty() and store.versions() == [0, 1]
            assert proc.log().count("update refused") == 1
            assert group.stop("trainer") == 0, group.logs()
    finally:
        buffer.close()
        session.close()

"""ROS 2 trainer node of LAECIPS: parameters, ~/model_update and /diagnostics around TrainerService."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from laecips_common.node_support import (
    declare_config,
    diagnostic_status,
    publish_diagnostics,
    run_node,
    set_parameters_result,
    stop_service,
)
from laecips_core.services.trainer_service import TRAINER_PARAMS, TrainerNodeConfig, TrainerService
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from laecips_core import transport
from laecips_msgs.msg import ModelUpdate

NODE_NAME = "trainer_node"

# ------------------------------------------------------------------------------------------- node


class TrainerNode(Node):
    """Thin rclpy adapter of TrainerService: parameters, timer, ~/model_update, /diagnostics.

    ~/model_update (laecips_msgs/ModelUpdate, reliable, transient local) carries every publication; its
    uri "zenoh:laecips/<robot_id>/model/weights/<version>" names the robot.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        values = declare_config(self, TRAINER_PARAMS, TrainerNodeConfig())
        self._cfg = TrainerNodeConfig(**values).validate()
        latched = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=max(10, 2 * len(self._cfg.robot_ids)),
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._update_pub = self.create_publisher(ModelUpdate, "~/model_update", latched)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        cfg = self._cfg
        self._session = transport.open_session(cfg.zenoh(), retry_s=cfg.zenoh_open_timeout_s)
        try:
            self._service = TrainerService(
                cfg, self._session, self.get_logger(), self._publish_update, clock=self._now
            )
            if cfg.republish_on_start:
                self._service.republish()
        except BaseException:
            self._session.close()
            raise
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(cfg.check_period_s, self._service.check)  # maxtime on self._now (sim time)
        self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info(
            f"trainer watching {list(cfg.robot_ids)} (maxsize {cfg.maxsize}, maxtime {cfg.maxtime_s} s), "
            f"signing with {self._service.key_path} as {cfg.signer!r}, "
            f"public key {self._service.public_key_path}"
        )

    def _now(self) -> float:
        """The node's clock in seconds (the /clock time under use_sim_time; 0.0 before the first one)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_update(self, robot: str, announcement: transport.ModelAnnouncement) -> None:
        """~/model_update mirrors the signed announcement field for field, so its stamp is the
        announcement's wall-clock time (when the weights were made; for humans, covered by the
        signature) and deliberately NOT the node's clock: under use_sim_time a re-stamp would no longer
        verify. Timers and /diagnostics follow the node's clock."""
        msg = ModelUpdate()
        msg.version = announcement.version
        msg.sha256 = announcement.sha256
        msg.uri = announcement.uri
        msg.signer = announcement.signer
        msg.signature = announcement.signature
        msg.model_name = announcement.model_name
        msg.num_classes = announcement.num_classes
        seconds = int(announcement.stamp)
        msg.stamp.sec = seconds
        msg.stamp.nanosec = int((announcement.stamp - seconds) * 1e9)
        self._update_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        statuses = []
        for robot, info in self._service.snapshot().items():
            level = DiagnosticStatus.WARN if info["failed"] else DiagnosticStatus.OK
            message = str(info["last_reason"])[:200] or str(info["phase"])
            values = {k: v for k, v in info.items() if k != "last_reason"}
            statuses.append(diagnostic_status(f"{self.get_name()}: {robot}", robot, level, message, values))
        publish_diagnostics(self, self._diag_pub, statuses)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """The one runtime-change hook: training hyper-parameters apply to the next job, the rest is fixed."""
        return set_parameters_result(params, TRAINER_PARAMS, self._reconfigure)

    def _reconfigure(self, changes: dict[str, Any]) -> None:
        new_cfg = replace(self._cfg, **changes).validate()
        self._cfg = new_cfg
        self._service.reconfigure(new_cfg)

    def destroy_node(self) -> None:
        """Stop training processes and Zenoh before the node goes."""
        stop_service(getattr(self, "_service", None), getattr(self, "_session", None), self)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point ``trainer_node`` (ros2 run laecips_cloud trainer_node --ros-args ...)."""
    run_node(TrainerNode, NODE_NAME, args)


if __name__ == "__main__":
    main()

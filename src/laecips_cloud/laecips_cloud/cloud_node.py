"""ROS 2 cloud node of LAECIPS: parameters, ~/status and /diagnostics around laecips_core's CloudService."""

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
from laecips_core.algo.fusion import ORDERS
from laecips_core.services.cloud_config import CLOUD_PARAMS, CloudConfig
from laecips_core.services.cloud_robots import RequestEvent
from laecips_core.services.cloud_service import CloudService
from laecips_core.services.params import check_choice, check_ranges
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from laecips_core import transport
from laecips_msgs.msg import CloudStatus

NODE_NAME = "cloud_node"

# ------------------------------------------------------------------------------------------- node


class CloudNode(Node):
    """Thin rclpy adapter of CloudService: parameters, ~/status (CloudStatus), /diagnostics.

    Raises:
        ConfigError: a parameter is invalid (the message names it) or Zenoh cannot be opened.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        values = declare_config(self, CLOUD_PARAMS, CloudConfig())
        self._cfg = CloudConfig(**values).validate()
        reliable = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=50,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._status_pub = self.create_publisher(CloudStatus, "~/status", reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        cfg = self._cfg
        self._session = transport.open_session(cfg.zenoh(), retry_s=cfg.zenoh_open_timeout_s)
        try:
            self._service = CloudService(cfg, self._session, self.get_logger(), self._publish_status)
            self._service.start()
        except BaseException:
            self._session.close()
            raise
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        listen = transport.config_endpoints(cfg.zenoh(), "listen")
        self.get_logger().info(
            f"cloud serving {[transport.infer_key(r) for r in cfg.robot_ids]} with lvm {cfg.lvm}, "
            f"{cfg.workers} worker(s), f versions "
            f"{ {r: m.current for r, m in self._service.models.items()} }, zenoh listen {listen}"
        )

    def _publish_status(self, event: RequestEvent) -> None:
        msg = CloudStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = event.robot_id
        msg.robot_id = event.robot_id
        msg.num_masks = max(0, event.num_masks)
        msg.model_version = max(0, event.model_version)
        msg.lvm_s = float(event.lvm_s)
        msg.fusion_s = float(event.fusion_s)
        msg.replay_size = max(0, event.replay_size)
        msg.error = event.error
        self._status_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        statuses = []
        for robot, stats in self._service.snapshot().items():
            done = max(stats.ok, 1)
            values = {
                "requests": stats.requests,
                "ok": stats.ok,
                "errors": stats.errors,
                "busy": stats.busy,
                "expired": stats.expired,
                "model_version": stats.model_version,
                "replay_size": stats.replay_size,
                "updates_stored": stats.updates_stored,
                "updates_refused": stats.updates_refused,
                "mean_lvm_s": round(stats.lvm_s_sum / done, 4),
                "mean_cloud_s": round(stats.cloud_s_sum / done, 4),
            }
            level = DiagnosticStatus.WARN if stats.errors or stats.busy else DiagnosticStatus.OK
            message = stats.last_error[:200] if stats.last_error else "serving"
            statuses.append(diagnostic_status(f"{self.get_name()}: {robot}", robot, level, message, values))
        health = self._service.health()
        level = DiagnosticStatus.WARN if health.restarts else DiagnosticStatus.OK
        message = f"worker died and was restarted: {health.last_death}" if health.restarts else "running"
        values = {"workers": len(health.workers), "alive": health.alive, "restarts": health.restarts}
        statuses.append(diagnostic_status(f"{self.get_name()}: workers", "cloud", level, message, values))
        publish_diagnostics(self, self._diag_pub, statuses)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """The one runtime-change hook: only max_request_bytes, max_queue_wait_s and fusion_order change."""
        return set_parameters_result(params, CLOUD_PARAMS, self._reconfigure)

    def _reconfigure(self, changes: dict[str, Any]) -> None:
        new_cfg = replace(self._cfg, **changes)
        check_ranges(new_cfg, CLOUD_PARAMS, fields=changes)
        check_choice("fusion_order", new_cfg.fusion_order, ORDERS)
        self._cfg = new_cfg
        self._service.reconfigure(new_cfg)

    def destroy_node(self) -> None:
        """Stop the service and close Zenoh before the node goes."""
        stop_service(getattr(self, "_service", None), getattr(self, "_session", None), self)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Entry point ``cloud_node`` (ros2 run laecips_cloud cloud_node --ros-args ...)."""
    run_node(CloudNode, NODE_NAME, args)


if __name__ == "__main__":
    main()

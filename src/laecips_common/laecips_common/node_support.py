"""rclpy plumbing shared by the LAECIPS nodes: parameter declaration, set-callback, diagnostics, main()."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from laecips_core.errors import ConfigError, LaecipsError
from laecips_core.services.params import ParamSpec, field_changes
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher


class _Stoppable(Protocol):
    def stop(self) -> Any: ...


class _Closable(Protocol):
    def close(self) -> Any: ...


def descriptor(spec: ParamSpec, default: Any) -> ParameterDescriptor:
    """ParameterDescriptor with the description, read_only flag and, for numbers, the allowed range.

    Args:
        spec: The parameter.
        default: Its default value (a float default gives a floating-point range, else an integer one).
    """
    desc = ParameterDescriptor(description=spec.description, read_only=not spec.mutable)
    if spec.lo is not None and spec.hi is not None:
        if isinstance(default, float):
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(spec.lo), to_value=float(spec.hi))
            ]
        else:
            desc.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi), step=1)]
    return desc


def declare_config(node: Node, specs: Sequence[ParamSpec], defaults: Any) -> dict[str, Any]:
    """Declare every parameter of a node (defaults from a config dataclass) and return field -> value.

    Tuples of strings become STRING_ARRAY parameters (the default when not overridden).

    Args:
        node: The node declaring them.
        specs: Its parameter table.
        defaults: Config dataclass instance with one attribute per spec.field.

    Returns:
        field -> declared value, ready for ``Config(**values)``.
    """
    values: dict[str, Any] = {}
    for spec in specs:
        default = getattr(defaults, spec.field)
        if isinstance(default, tuple):
            param: Parameter[Any] = node.declare_parameter(
                spec.name, Parameter.Type.STRING_ARRAY, descriptor(spec, default)
            )
            values[spec.field] = tuple(param.value) if param.value else default
        else:
            values[spec.field] = node.declare_parameter(spec.name, default, descriptor(spec, default)).value
    return values


def set_parameters_result(
    params: Sequence[Parameter[Any]],
    specs: Sequence[ParamSpec],
    apply: Callable[[dict[str, Any]], None],
) -> SetParametersResult:
    """The generic on-set-parameters hook: refuse read-only ones, hand the field changes to `apply`.

    Args:
        params: Parameters being set.
        specs: The node's parameter table (other names are ignored).
        apply: Validates and adopts the changes (field -> value); raises ConfigError or TypeError to refuse.

    Returns:
        successful=False with the error as reason when refused.
    """
    try:
        apply(field_changes(((p.name, p.value) for p in params), specs))
    except (ConfigError, TypeError) as err:
        return SetParametersResult(successful=False, reason=str(err))
    return SetParametersResult(successful=True)


def diagnostic_status(
    name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, Any]
) -> DiagnosticStatus:
    """One DiagnosticStatus; values are shown as key/str(value) pairs."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=str(value)) for key, value in values.items()],
    )


def publish_diagnostics(node: Node, publisher: Publisher, statuses: Iterable[DiagnosticStatus]) -> None:
    """Publish one DiagnosticArray stamped with the node's clock."""
    array = DiagnosticArray()
    array.header.stamp = node.get_clock().now().to_msg()
    array.status = list(statuses)
    publisher.publish(array)


def close_session(session: _Closable | None, node: Node | None = None) -> None:
    """Close a Zenoh session; a failure is logged (on the node's logger) but never raised."""
    if session is None:
        return
    try:
        session.close()
    except Exception as err:  # closing must not hide the reason we are stopping
        if node is not None:
            node.get_logger().warning(f"zenoh session close failed: {err}")


def stop_service(service: _Stoppable | None, session: _Closable | None, node: Node | None = None) -> None:
    """Stop a node's ROS-free service (when it was built), then close its Zenoh session."""
    if service is not None:
        service.stop()
    close_session(session, node)


def run_node(
    factory: Callable[[], Node],
    node_name: str,
    args: Sequence[str] | None = None,
    fatal: tuple[type[Exception], ...] = (LaecipsError,),
) -> None:
    """Body of a node's console entry point: init, build, spin until Ctrl-C or shutdown, destroy.

    Args:
        factory: Builds the node (after rclpy.init).
        node_name: Logger name of the fatal start-up message.
        args: Command line (None = sys.argv).
        fatal: Errors of the factory that end the process with exit code 2 and a one-line message
            (bad parameter, unreachable router, unusable bundle or key).

    Raises:
        SystemExit: code 2 when the node cannot start.
    """
    try:
        with rclpy.init(args=list(args) if args is not None else None):
            try:
                node = factory()
            except fatal as err:
                rclpy.logging.get_logger(node_name).fatal(f"cannot start: {err}")
                raise SystemExit(2) from err
            try:
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass

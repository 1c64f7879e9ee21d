"""ROS 2 launch file of the robot side: the LAECIPS edge node (f, h, uploads, model updates)."""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node

from launch import LaunchDescription

# Default config files live in the workspace's config/ folder (scripts/env.sh sets LAECIPS_ROOT);
# installed systems pass params_file:=... and zenoh_config:=... explicitly.
CONFIG_DIR = PathJoinSubstitution([EnvironmentVariable("LAECIPS_ROOT", default_value="."), "config"])


def generate_launch_description() -> LaunchDescription:
    """Edge node in the namespace <robot_id>; topics ~/labels, ~/overlay, ~/result and /diagnostics."""
    arguments = [
        DeclareLaunchArgument("robot_id", default_value="robot1", description="robot id (Zenoh key chunk)"),
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw", description="camera topic (Image)"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([CONFIG_DIR, "edge.yaml"]),
            description="edge node parameters YAML",
        ),
        DeclareLaunchArgument(
            "zenoh_config",
            default_value=PathJoinSubstitution([CONFIG_DIR, "edge.json5"]),
            description="Zenoh json5 config of the edge (client of the router)",
        ),
        DeclareLaunchArgument("backend", default_value="torch", description="torch or onnxruntime"),
    ]
    edge = Node(
        package="laecips_edge",
        executable="edge_node",
        name="edge_node",
        namespace=LaunchConfiguration("robot_id"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "robot_id": LaunchConfiguration("robot_id"),
                "image_topic": LaunchConfiguration("image_topic"),
                "zenoh_config": LaunchConfiguration("zenoh_config"),
                "backend": LaunchConfiguration("backend"),
            },
        ],
    )
    return LaunchDescription([*arguments, edge])

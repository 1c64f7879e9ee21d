"""ROS 2 launch file of the whole LAECIPS demo on one machine: Zenoh router, cloud, trainer, edge, bag."""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import (
    EnvironmentVariable,
    LaunchConfiguration,
    PathJoinSubstitution,
    PythonExpression,
    ThisLaunchFileDir,
)
from launch_ros.actions import Node

from launch import LaunchDescription

CONFIG_DIR = PathJoinSubstitution([EnvironmentVariable("LAECIPS_ROOT", default_value="."), "config"])


def generate_launch_description() -> LaunchDescription:
    """Router (config/router.json5), cloud.launch.py, edge.launch.py and, given bag:=..., the bag player.

    Without a bag, feed the edge from a camera driver publishing image_topic. View in RViz with
    ``rviz2 -d config/laecips.rviz``. ``make demo`` (scripts/demo.py) runs the same processes without
    ros2 launch and writes a report.
    """
    arguments = [
        DeclareLaunchArgument("robot_id", default_value="robot1", description="robot id (Zenoh key chunk)"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw", description="camera topic"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([CONFIG_DIR, "edge.yaml"]),
            description="edge node parameters YAML",
        ),
        DeclareLaunchArgument(
            "backend", default_value="torch", description="edge backend: torch or onnxruntime"
        ),
        DeclareLaunchArgument(
            "zenoh_config",
            default_value=PathJoinSubstitution([CONFIG_DIR, "edge.json5"]),
            description="Zenoh json5 config of the edge",
        ),
        DeclareLaunchArgument(
            "cloud_zenoh_config",
            default_value=PathJoinSubstitution([CONFIG_DIR, "cloud.json5"]),
            description="Zenoh json5 config of the cloud and trainer",
        ),
        DeclareLaunchArgument(
            "router_config",
            default_value=PathJoinSubstitution([CONFIG_DIR, "router.json5"]),
            description="Zenoh json5 config of the router",
        ),
        DeclareLaunchArgument("bag", default_value="", description="rosbag2 to play ('' = none)"),
        DeclareLaunchArgument("rate", default_value="1.0", description="bag playback rate"),
    ]
    router = Node(
        package="laecips_cloud",
        executable="zenoh_router",
        name="zenoh_router",
        output="screen",
        arguments=["--config", LaunchConfiguration("router_config")],
    )
    cloud = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([ThisLaunchFileDir(), "cloud.launch.py"])),
        launch_arguments={
            "robot_id": LaunchConfiguration("robot_id"),
            "zenoh_config": LaunchConfiguration("cloud_zenoh_config"),
        }.items(),
    )
    edge = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([ThisLaunchFileDir(), "edge.launch.py"])),
        launch_arguments={
            "robot_id": LaunchConfiguration("robot_id"),
            "image_topic": LaunchConfiguration("image_topic"),
            "params_file": LaunchConfiguration("params_file"),
            "zenoh_config": LaunchConfiguration("zenoh_config"),
            "backend": LaunchConfiguration("backend"),
        }.items(),
    )
    player = ExecuteProcess(
        cmd=[
            "laecips",
            "play-bag",
            LaunchConfiguration("bag"),
            "--rate",
            LaunchConfiguration("rate"),
            "--wait-topic",
            LaunchConfiguration("image_topic"),
        ],
        output="screen",
        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("bag"), "' != ''"])),
    )
    return LaunchDescription([*arguments, router, cloud, edge, player])

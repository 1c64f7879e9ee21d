"""ROS 2 launch file of the cloud side: the LAECIPS cloud node (LVM + fusion) and the continual trainer."""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node

from launch import LaunchDescription

# Default config files live in the workspace's config/ folder (scripts/env.sh sets LAECIPS_ROOT);
# installed systems pass params_file:=..., trainer_params_file:=... and zenoh_config:=... explicitly.
CONFIG_DIR = PathJoinSubstitution([EnvironmentVariable("LAECIPS_ROOT", default_value="."), "config"])


def generate_launch_description() -> LaunchDescription:
    """Cloud node (queryable laecips/<robot_id>/infer) and trainer node sharing the replay/weights folders."""
    arguments = [
        DeclareLaunchArgument(
            "robot_id", default_value="robot1", description="robot served (Zenoh key chunk)"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([CONFIG_DIR, "cloud.yaml"]),
            description="cloud node parameters YAML",
        ),
        DeclareLaunchArgument(
            "trainer_params_file",
            default_value=PathJoinSubstitution([CONFIG_DIR, "trainer.yaml"]),
            description="trainer node parameters YAML",
        ),
        DeclareLaunchArgument(
            "zenoh_config",
            default_value=PathJoinSubstitution([CONFIG_DIR, "cloud.json5"]),
            description="Zenoh json5 config of the cloud and the trainer (clients of the router)",
        ),
        DeclareLaunchArgument(
            "edge_model_path",
            default_value="",
            description="bundle the robot's edge starts from (seeds the cloud's and trainer's weight stores)",
        ),
    ]
    robot_ids = [LaunchConfiguration("robot_id")]
    cloud = Node(
        package="laecips_cloud",
        executable="cloud_node",
        name="cloud_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "robot_ids": robot_ids,
                "zenoh_config": LaunchConfiguration("zenoh_config"),
                "edge_model.path": LaunchConfiguration("edge_model_path"),
            },
        ],
    )
    trainer = Node(
        package="laecips_cloud",
        executable="trainer_node",
        name="trainer_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("trainer_params_file"),
            {
                "robot_ids": robot_ids,
                "zenoh_config": LaunchConfiguration("zenoh_config"),
                "edge_model.path": LaunchConfiguration("edge_model_path"),
            },
        ],
    )
    return LaunchDescription([*arguments, cloud, trainer])

"""ROS 2 launch file of the cloud side: the LAECIPS cloud node (LVM + fusion) and the continual trainer.

    ros2 launch laecips_bringup cloud.launch.py robot_id:=robot1 model_path:=/path/start.safetensors

Defaults come from the installed laecips_bringup share folder (FindPackageShare).
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

CONFIG_DIR = PathJoinSubstitution([FindPackageShare("laecips_bringup"), "config"])


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
            description="Zenoh json5 config of the cloud node (client of the router)",
        ),
        DeclareLaunchArgument(
            "trainer_zenoh_config",
            default_value=LaunchConfiguration("zenoh_config"),
            description="Zenoh json5 config of the trainer (default: zenoh_config; mTLS: tls/trainer.json5)",
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value="",
            description="bundle the robot's edge starts from (seeds the cloud's and trainer's weight stores)",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="follow /clock (bag replay with --clock)"
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
                "edge_model.path": LaunchConfiguration("model_path"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
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
                "zenoh_config": LaunchConfiguration("trainer_zenoh_config"),
                "edge_model.path": LaunchConfiguration("model_path"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
    )
    return LaunchDescription([*arguments, cloud, trainer])

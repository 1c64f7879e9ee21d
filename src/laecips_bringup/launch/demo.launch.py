"""ROS 2 launch file of the whole LAECIPS demo on one machine: Zenoh router, cloud, trainer, edge, bag.

    ros2 launch laecips_bringup demo.launch.py bag:=/path/to/rosbag2 use_sim_time:=true

``make demo`` (scripts/demo.py) runs the same processes without ros2 launch and writes a report.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackagePrefix, FindPackageShare

SHARE = FindPackageShare("laecips_bringup")
CONFIG_DIR = PathJoinSubstitution([SHARE, "config"])
BAG_PLAYER = PathJoinSubstitution([FindPackagePrefix("laecips_edge"), "lib", "laecips_edge", "bag_player"])


def _bag_given(sim_time: bool) -> IfCondition:
    """True when bag:=... is set and use_sim_time is (sim_time=True) or is not (False) 'true'."""
    op = "in" if sim_time else "not in"
    return IfCondition(
        PythonExpression(
            [
                "'",
                LaunchConfiguration("bag"),
                "' != '' and '",
                LaunchConfiguration("use_sim_time"),
                f"'.lower() {op} ('true', '1')",
            ]
        )
    )


def generate_launch_description() -> LaunchDescription:
    """Router (config/router.json5), cloud.launch.py, edge.launch.py and, given bag:=..., the bag player.

    Without a bag, feed the edge from a camera driver publishing image_topic. View in RViz with
    ``rviz2 -d $(ros2 pkg prefix laecips_bringup)/share/laecips_bringup/config/laecips.rviz``.
    With use_sim_time:=true the bag player publishes /clock (--clock) and every node follows it.
    """
    arguments = [
        DeclareLaunchArgument("robot_id", default_value="robot1", description="robot id (Zenoh key chunk)"),
        DeclareLaunchArgument(
            "namespace", default_value=LaunchConfiguration("robot_id"), description="edge node namespace"
        ),
        DeclareLaunchArgument(  # the bag's topic: `laecips record-bag` writes /camera/image_raw (absolute)
            "image_topic",
            default_value="/camera/image_raw",
            description="camera topic of the bag, passed to the edge (edge.launch.py's own default is "
            "the relative camera/image_raw)",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([CONFIG_DIR, "edge.yaml"]),
            description="edge node parameters YAML (your copy with trusted_public_key)",
        ),
        DeclareLaunchArgument(
            "cloud_params_file",
            default_value=PathJoinSubstitution([CONFIG_DIR, "cloud.yaml"]),
            description="cloud node parameters YAML (your copy with trusted_public_key)",
        ),
        DeclareLaunchArgument(
            "trainer_params_file",
            default_value=PathJoinSubstitution([CONFIG_DIR, "trainer.yaml"]),
            description="trainer node parameters YAML (your copy with signing_key)",
        ),
        DeclareLaunchArgument(
            "backend", default_value="torch", description="edge backend: torch or onnxruntime"
        ),
        DeclareLaunchArgument(
            "model_path", default_value="", description="bundle of f and h the edge and the cloud start from"
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
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="nodes follow /clock from the bag player"
        ),
    ]
    router = Node(
        package="laecips_cloud",
        executable="zenoh_router",
        name="zenoh_router",
        output="screen",
        arguments=["--config", LaunchConfiguration("router_config")],
    )
    cloud = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([SHARE, "launch", "cloud.launch.py"])),
        launch_arguments={
            "robot_id": LaunchConfiguration("robot_id"),
            "params_file": LaunchConfiguration("cloud_params_file"),
            "trainer_params_file": LaunchConfiguration("trainer_params_file"),
            "zenoh_config": LaunchConfiguration("cloud_zenoh_config"),
            "model_path": LaunchConfiguration("model_path"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
        }.items(),
    )
    edge = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([SHARE, "launch", "edge.launch.py"])),
        launch_arguments={
            "robot_id": LaunchConfiguration("robot_id"),
            "namespace": LaunchConfiguration("namespace"),
            "image_topic": LaunchConfiguration("image_topic"),
            "params_file": LaunchConfiguration("params_file"),
            "zenoh_config": LaunchConfiguration("zenoh_config"),
            "backend": LaunchConfiguration("backend"),
            "model_path": LaunchConfiguration("model_path"),
            "use_sim_time": LaunchConfiguration("use_sim_time"),
        }.items(),
    )
    play = [BAG_PLAYER, LaunchConfiguration("bag"), "--rate", LaunchConfiguration("rate"),
            "--wait-topic", LaunchConfiguration("image_topic")]  # fmt: skip
    player = ExecuteProcess(cmd=play, output="screen", condition=_bag_given(sim_time=False))
    player_clock = ExecuteProcess(
        cmd=[*play, "--clock"], output="screen", condition=_bag_given(sim_time=True)
    )
    return LaunchDescription([*arguments, router, cloud, edge, player, player_clock])

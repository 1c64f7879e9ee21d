"""ROS 2 launch file of the robot side: the LAECIPS edge node (f, h, uploads, model updates).

    ros2 launch laecips_bringup edge.launch.py robot_id:=robot1    # camera: /robot1/camera/image_raw
    ros2 launch laecips_bringup edge.launch.py image_topic:=/camera/image_raw   # a root-level camera

image_topic is relative by default (camera/image_raw, resolved in the node's namespace, like
edge.yaml's), so a second robot launched with robot_id:=robot2 reads /robot2/camera/image_raw; give an
absolute name (or remap) for a camera driver outside the namespace. Defaults come from the installed
laecips_bringup share folder (FindPackageShare), so this works from any working directory once the
workspace is built and sourced.
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

CONFIG_DIR = PathJoinSubstitution([FindPackageShare("laecips_bringup"), "config"])


def generate_launch_description() -> LaunchDescription:
    """Edge node <namespace>/edge_node; topics ~/labels, ~/overlay, ~/result and /diagnostics."""
    arguments = [
        DeclareLaunchArgument("robot_id", default_value="robot1", description="robot id (Zenoh key chunk)"),
        DeclareLaunchArgument(
            "namespace",
            default_value=LaunchConfiguration("robot_id"),
            description="ROS namespace of the edge node (default: the robot id)",
        ),
        DeclareLaunchArgument(
            "image_topic",
            default_value="camera/image_raw",
            description="camera topic (Image); relative = inside the namespace, or give an absolute name",
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
        DeclareLaunchArgument(
            "model_path",
            default_value="",
            description="safetensors bundle of f and h the edge starts from (overrides the params file's "
            "edge_model.path, like every argument passed below; '' = untrained f until an update)",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="follow /clock (bag replay with --clock)"
        ),
    ]
    edge = Node(
        package="laecips_edge",
        executable="edge_node",
        name="edge_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "robot_id": LaunchConfiguration("robot_id"),
                "image_topic": LaunchConfiguration("image_topic"),
                "zenoh_config": LaunchConfiguration("zenoh_config"),
                "backend": LaunchConfiguration("backend"),
                "edge_model.path": LaunchConfiguration("model_path"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
    )
    return LaunchDescription([*arguments, edge])

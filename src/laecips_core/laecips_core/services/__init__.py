"""ROS-free runtime services behind the thin rclpy nodes: the edge (edge_*, offload), the cloud (cloud_*),
the trainer (trainer_service) and their shared plumbing. Services never import training or evaluation."""

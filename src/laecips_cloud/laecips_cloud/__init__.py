"""laecips_cloud: thin rclpy nodes over laecips_core."""

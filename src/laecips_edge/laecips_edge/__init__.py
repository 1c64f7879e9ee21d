"""laecips_edge: thin rclpy nodes over laecips_core."""

"""laecips_common: rclpy plumbing shared by the LAECIPS nodes of laecips_edge and laecips_cloud."""

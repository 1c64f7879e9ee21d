"""LAECIPS core: the algorithms of large-vision-model assisted edge-cloud segmentation, without ROS."""

__version__ = "0.1.0"

"""Setup shim so colcon's ament_python build type can build laecips_core; metadata is in pyproject.toml."""

from setuptools import setup

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/laecips_core"]),
        ("share/laecips_core", ["package.xml"]),
    ],
)

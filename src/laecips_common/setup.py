"""ament_python package setup for laecips_common."""

from setuptools import find_packages, setup

PACKAGE = "laecips_common"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["py.typed"]},  # PEP 561: typed package
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # Run dependencies (rclpy, laecips_core) are declared in package.xml for rosdep and colcon.
    install_requires=["setuptools"],
    zip_safe=False,  # py.typed: type checkers do not read zipped packages
    maintainer="LAECIPS developers",
    maintainer_email="laecips@example.org",
    description="rclpy plumbing shared by the LAECIPS nodes (parameters, diagnostics, main wrapper).",
    license="Apache-2.0",
)

"""ament_python package setup for laecips_cloud."""

from setuptools import find_packages, setup

PACKAGE = "laecips_cloud"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["py.typed"]},  # PEP 561: typed package
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,  # py.typed: type checkers do not read zipped packages
    maintainer="LAECIPS developers",
    maintainer_email="laecips@example.org",
    description="LAECIPS cloud node (LVM + fusion per robot) and continual trainer node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "cloud_node = laecips_cloud.cloud_node:main",
            "trainer_node = laecips_cloud.trainer_node:main",
            "zenoh_router = laecips_cloud.router:main",
        ],
    },
)

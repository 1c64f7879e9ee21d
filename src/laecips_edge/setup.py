"""ament_python package setup for laecips_edge."""

from setuptools import find_packages, setup

PACKAGE = "laecips_edge"

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
    description="LAECIPS edge node (f, h, upload of hard frames, model updates).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "edge_node = laecips_edge.edge_node:main",
            "bag_player = laecips_edge.bag_player:main",
        ],
        "laecips.commands": [
            "play-bag = laecips_edge.bag_player:register",
        ],
    },
)

"""Package metadata of laecips_core (ament_python for colcon, editable for pip).

The metadata lives here and not in a PEP 621 ``[project]`` table: Ubuntu's apt setuptools (59.6.0 on
22.04/Humble, 68.1.2 on 24.04/Jazzy) either ignores ``[project]`` or rejects its SPDX ``license``
string, and colcon runs this file with the system setuptools. setup.cfg puts executables in
``lib/laecips_core`` (``ros2 run laecips_core laecips ...``).
"""

from setuptools import find_packages, setup

PACKAGE = "laecips_core"

setup(
    name=PACKAGE,
    version="0.1.0",
    description=(
        "LAECIPS algorithms without ROS: edge models f, miners h, fusion (Algorithm 1), replay buffer, "
        "continual training, metrics, benchmark data, offline evaluation."
    ),
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    # Run dependencies are declared in package.xml (rosdep) and pinned in requirements-runtime.txt
    # (pip); nothing here, so colcon and pip never try to resolve torch or zenoh themselves.
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="LAECIPS developers",
    maintainer_email="laecips@example.org",
    license="Apache-2.0",
    entry_points={"console_scripts": ["laecips = laecips_core.cli:main"]},
)

"""ament_python package setup for laecips_bringup: launch files and configuration, no Python code.

Everything under launch/ and config/ is installed to share/laecips_bringup/ with its sub-folders
(config/tls/...), so ``ros2 launch laecips_bringup edge.launch.py`` and FindPackageShare find it.
"""

from pathlib import Path

from setuptools import setup

PACKAGE = "laecips_bringup"
HERE = Path(__file__).resolve().parent


def share_tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries that install ``folder/**`` to ``share/<package>/folder/**`` (layout kept)."""
    by_dir: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        relative = path.relative_to(HERE)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
            by_dir.setdefault(f"share/{PACKAGE}/{relative.parent.as_posix()}", []).append(relative.as_posix())
    return sorted(by_dir.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_tree("launch"),
        *share_tree("config"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="LAECIPS developers",
    maintainer_email="laecips@example.org",
    description="LAECIPS launch files, parameter files, Zenoh configs, Fast DDS profile and RViz config.",
    license="Apache-2.0",
)

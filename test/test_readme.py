"""README.md says what the code does: its commands, launch arguments, node names, topics and parameters."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from test_launch_static import (
    LAUNCH_DIR,
    console_scripts,
    declared_arguments,
    declared_parameters,
    packages,
)

from laecips_core import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _command_lines() -> list[list[str]]:
    """Shell commands of the README's bash blocks (continuations joined, comments dropped), as argv."""
    lines: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(shlex.split(line.replace("$(", "").replace(")", "")))
    return lines


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_laecips_commands_and_options_exist() -> None:
    subs = _subparsers()
    seen = 0
    for argv in _command_lines():
        if argv[:1] != ["laecips"]:
            continue
        seen += 1
        assert argv[1] in subs, f"README runs `laecips {argv[1]}`, which does not exist ({sorted(subs)})"
        options = {opt for action in subs[argv[1]]._actions for opt in action.option_strings}
        for word in argv[2:]:
            if word.startswith("--"):
                assert word in options, f"`laecips {argv[1]}` has no option {word}"
    assert seen >= 8


def test_launch_commands_use_declared_arguments_and_ros2_run_names_executables() -> None:
    pkgs = packages()
    launches = runs = 0
    for argv in _command_lines():
        if argv[:3] == ["ros2", "launch", "laecips_bringup"]:
            launches += 1
            path = LAUNCH_DIR / argv[3]
            assert path.is_file(), argv
            for word in argv[4:]:
                if ":=" in word:
                    name = word.split(":=", 1)[0]
                    assert name in declared_arguments(path), f"{argv[3]} declares no argument {name}"
        elif argv[:2] == ["ros2", "run"]:
            runs += 1
            assert argv[3] in console_scripts(pkgs[argv[2]]), f"{argv[2]} has no executable {argv[3]}"
    assert launches >= 3 and runs >= 1


def test_named_topics_and_parameters_exist() -> None:
    edge_src = console_scripts(packages()["laecips_edge"])["edge_node"]
    cloud = packages()["laecips_cloud"]
    sources = "".join(p.read_text() for p in (edge_src, *(cloud / "laecips_cloud").glob("*_node.py")))
    for topic in sorted(set(re.findall(r"`(~/[a-z_]+)`", README))):
        assert f'"{topic}"' in sources, f"README names {topic}, which no node publishes"
    for node in ("/edge_node", "/robot1/edge_node", "/cloud_node", "/trainer_node"):
        assert f"`{node}`" in README
    assert not re.search(r"/laecips_edge\b(?!:)", README.replace("src/laecips_edge", "")), "old node name"
    edge = declared_parameters(edge_src)
    for name in ("image_topic", "robot_id", "num_classes", "class_names", "target_upload_rate", "threshold",
                 "latency_budget_s", "stream_norm_prior", "trusted_public_key", "allow_unsigned_weights",
                 "use_sim_time"):  # fmt: skip
        assert f"`{name}" in README, f"README does not document {name}"
        assert name in edge | {"use_sim_time"}, name
    cloud_params = declared_parameters(cloud / "laecips_cloud" / "cloud_node.py")
    assert "max_pixels" in cloud_params and "`max_pixels`" in README

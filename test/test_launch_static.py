"""Static checks of laecips_bringup's launch/*.launch.py, config/*.yaml and config/laecips.rviz.

launch_ros is not installable here, so the files are read with ast. These checks run on the source
tree; test/workspace/test_colcon_build.py resolves every substitution against a colcon install tree.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LAUNCH_DIR = SRC / "laecips_bringup" / "launch"
CONFIG_DIR = SRC / "laecips_bringup" / "config"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))
# Parameters every rclpy node has without declaring them.
IMPLICIT_PARAMETERS = {"use_sim_time", "start_type_description_service"}


# ----------------------------------------------------------------------------------------- parsing


def packages() -> dict[str, Path]:
    """ROS package name (package.xml <name>) -> package folder, for every package under src/."""
    found = {}
    for xml in SRC.glob("*/package.xml"):
        name = ET.parse(xml).getroot().findtext("name")
        assert name, f"{xml} has no <name>"
        found[name.strip()] = xml.parent
    return found


def console_scripts(package_dir: Path) -> dict[str, Path]:
    """Console entry points of an ament_python package (parsed from setup.py) -> module source file."""
    setup = package_dir / "setup.py"
    if not setup.is_file():
        return {}
    tree = ast.parse(setup.read_text())
    scripts: dict[str, Path] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    assert isinstance(value, ast.List), "console_scripts must be a literal list"
                    for item in value.elts:
                        assert isinstance(item, ast.Constant), "console_scripts entries must be literals"
                        exe, target = (part.strip() for part in item.value.split("=", 1))
                        module = target.split(":", 1)[0]
                        scripts[exe] = package_dir.joinpath(*module.split(".")).with_suffix(".py")
    return scripts


def _first_string(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def declared_parameters(source: Path) -> set[str]:
    """Parameter names a node module declares, read from its source without importing it.

    Recognised: ``declare_parameter("name", ...)``; ``declare_parameters(namespace, [("name", ...)])``
    (with the namespace prefix); and module-level parameter tables: an assignment to a name containing
    "PARAM" whose value is a tuple/list of calls or tuples with a literal first string (e.g.
    ``_PARAMS = (_Param("threshold", ...), ...)``), counted when the module also calls
    ``declare_parameter`` or passes the table to a ``declare*`` helper (``declare_config(node, PARAMS)``).
    """
    tree = ast.parse(source.read_text())
    names: set[str] = set()
    declares = False
    handed_over: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name.startswith("declare"):
            handed_over |= {a.id for a in node.args if isinstance(a, ast.Name)}
        if name == "declare_parameter":
            declares = True
            first = _first_string(node)
            if first:
                names.add(first)
        elif name == "declare_parameters":
            declares = True
            namespace = _first_string(node) or ""
            for arg in [*node.args[1:], *(kw.value for kw in node.keywords if kw.arg == "parameters")]:
                if isinstance(arg, ast.List | ast.Tuple):
                    for elt in arg.elts:
                        if isinstance(elt, ast.Tuple) and elt.elts and isinstance(elt.elts[0], ast.Constant):
                            names.add(f"{namespace}.{elt.elts[0].value}" if namespace else elt.elts[0].value)
    local = _module_tables(tree)
    for table, elts in local.items():
        if declares or table in handed_over:
            names |= _table_entries(elts, tree)
    for table in handed_over - set(local):  # a table imported from a module under src/
        names |= _resolve_table(table, tree, 1)
    return names


def _module_tables(tree: ast.Module) -> dict[str, list[ast.expr]]:
    """Module-level assignments to a name containing "PARAM" whose value is a tuple/list -> its items."""
    tables: dict[str, list[ast.expr]] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if isinstance(value, ast.Tuple | ast.List):
            for target in targets:
                if isinstance(target, ast.Name) and "PARAM" in target.id.upper():
                    tables[target.id] = list(value.elts)
    return tables


def _table_entries(elts: list[ast.expr], tree: ast.Module, depth: int = 0) -> set[str]:
    """Literal first strings of a table's calls/tuples; ``*OTHER`` is expanded from this module's tables
    or from ``from <module under src/> import OTHER`` (e.g. laecips_core.services.params.ZENOH_PARAMS)."""
    names: set[str] = set()
    for elt in elts:
        if isinstance(elt, ast.Call) and _first_string(elt):
            names.add(_first_string(elt) or "")
        elif isinstance(elt, ast.Tuple) and elt.elts and isinstance(elt.elts[0], ast.Constant):
            names.add(str(elt.elts[0].value))
        elif isinstance(elt, ast.Starred) and isinstance(elt.value, ast.Name) and depth < 4:
            names |= _resolve_table(elt.value.id, tree, depth + 1)
    return names


def _resolve_table(table: str, tree: ast.Module, depth: int) -> set[str]:
    local = _module_tables(tree)
    if table in local:
        return _table_entries(local[table], tree, depth)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and any(a.name == table for a in node.names):
            parts = node.module.split(".")
            path = SRC.joinpath(parts[0], *parts).with_suffix(".py")
            if path.is_file():
                other = ast.parse(path.read_text())
                return _table_entries(_module_tables(other).get(table, []), other, depth)
    return set()


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _literal(expr: ast.expr | None) -> str | None:
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, str) else None


def launch_calls(path: Path, name: str) -> list[ast.Call]:
    """All calls of `name` (e.g. "Node", "DeclareLaunchArgument") in a launch file."""
    return [
        n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call) and _call_name(n) == name
    ]


def declared_arguments(path: Path) -> set[str]:
    """Names of the DeclareLaunchArgument actions of a launch file."""
    return {_first_string(c) or "" for c in launch_calls(path, "DeclareLaunchArgument")}


def flatten(params: dict, prefix: str = "") -> set[str]:
    """ROS parameter names of a ros__parameters mapping (nested dicts become dotted names)."""
    out: set[str] = set()
    for key, value in params.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out |= flatten(value, full)
        else:
            out.add(full)
    return out


def yaml_parameters(path: Path) -> dict[str, set[str]]:
    """Node pattern (e.g. "/**") -> parameter names in a ROS 2 parameters YAML file."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a ROS 2 parameters file"
    out = {}
    for node, body in data.items():
        assert isinstance(body, dict) and "ros__parameters" in body, f"{path}: {node} lacks ros__parameters"
        out[str(node)] = flatten(body["ros__parameters"])
    return out


# ------------------------------------------------------------------------------------------- tests


def test_parser_reads_both_declaration_styles(tmp_path: Path) -> None:
    """The declaration parser finds literal and table declarations (and nothing else)."""
    src = tmp_path / "node.py"
    src.write_text(
        "_PARAMS = (_Param('alpha', 'a'), _Param('edge_model.path', 'p'))\n"
        "OTHER = (f('not_a_param'),)\n"
        "class N:\n"
        "    def __init__(self):\n"
        "        self.declare_parameter('beta', 1)\n"
        "        self.declare_parameters('ns', [('gamma', 2)])\n"
    )
    assert declared_parameters(src) == {"alpha", "edge_model.path", "beta", "ns.gamma"}
    src.write_text("_PARAMS = (_Param('alpha', 'a'),)\n")  # a table that is never declared
    assert declared_parameters(src) == set()
    src.write_text("NODE_PARAMS = (Spec('alpha'),)\ndef f(n):\n    declare_config(n, NODE_PARAMS)\n")
    assert declared_parameters(src) == {"alpha"}
    src.write_text(  # shared rows spliced in from this module or from a module under src/
        "from laecips_core.services.params import ZENOH_PARAMS\n"
        "_SHARED_PARAMS = (Spec('beta'),)\n"
        "NODE_PARAMS = (Spec('alpha'), *_SHARED_PARAMS, *ZENOH_PARAMS, *UNKNOWN_PARAMS)\n"
        "def f(n):\n    declare_config(n, NODE_PARAMS)\n"
    )
    assert declared_parameters(src) == {"alpha", "beta", "zenoh_config", "zenoh_mode", "zenoh_listen",
                                        "zenoh_connect", "zenoh_open_timeout_s"}  # fmt: skip
    src.write_text(  # the node declares a table defined in laecips_core (the ROS-free service module)
        "from laecips_core.services.params import ZENOH_PARAMS\n"
        "def f(n):\n    declare_config(n, ZENOH_PARAMS)\n"
    )
    assert declared_parameters(src) == {"zenoh_config", "zenoh_mode", "zenoh_listen", "zenoh_connect",
                                        "zenoh_open_timeout_s"}  # fmt: skip


def test_launch_files_exist() -> None:
    names = {p.name for p in LAUNCH_FILES}
    assert {"edge.launch.py", "cloud.launch.py", "demo.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_real_ros2_launch(path: Path) -> None:
    tree = ast.parse(path.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "launch" in modules, "launch files must use the real ROS 2 launch API"
    used = {_first_string(c) for c in launch_calls(path, "LaunchConfiguration")}
    missing = used - declared_arguments(path)
    assert not missing, (
        f"{path.name} uses LaunchConfiguration {sorted(missing)} without DeclareLaunchArgument"
    )


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_nodes_are_entry_points_and_parameters_are_declared(path: Path) -> None:
    pkgs = packages()
    for call in launch_calls(path, "Node"):
        package, executable = _literal(_kw(call, "package")), _literal(_kw(call, "executable"))
        assert package and executable, f"{path.name}: Node needs literal package= and executable="
        assert package in pkgs, f"{path.name}: package {package} is not under src/ (have {sorted(pkgs)})"
        scripts = console_scripts(pkgs[package])
        assert executable in scripts, (
            f"{path.name}: {executable} is not an entry point of {package}: {scripts}"
        )
        module = scripts[executable]
        assert module.is_file(), f"entry point {executable} points to missing {module}"
        declared = declared_parameters(module) | IMPLICIT_PARAMETERS
        params = _kw(call, "parameters")
        if params is None:
            continue
        assert isinstance(params, ast.List), f"{path.name}: parameters= must be a literal list"
        for item in params.elts:
            if isinstance(item, ast.Dict):
                for key in item.keys:
                    name = _literal(key)
                    assert name, f"{path.name}: parameter names must be literal strings"
                    assert name in declared, f"{path.name}: {executable} does not declare parameter {name!r}"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_package_references_exist(path: Path) -> None:
    pkgs = packages()
    for call in [*launch_calls(path, "FindPackageShare"), *launch_calls(path, "FindPackagePrefix")]:
        name = _first_string(call)
        assert name in pkgs, f"{path.name}: {ast.unparse(call)} is not a package of this workspace"


def test_demo_includes_edge_cloud_and_router_with_declared_arguments() -> None:
    demo = LAUNCH_DIR / "demo.launch.py"
    text = demo.read_text()
    included = set(re.findall(r"[\"']([a-z_]+\.launch\.py)[\"']", text))
    assert {"edge.launch.py", "cloud.launch.py"} <= included
    executables = {_literal(_kw(c, "executable")) for f in LAUNCH_FILES for c in launch_calls(f, "Node")}
    assert {"edge_node", "cloud_node", "trainer_node", "zenoh_router"} <= executables
    for call in launch_calls(demo, "IncludeLaunchDescription"):
        source = ast.unparse(call)
        target = next((name for name in included if name in source), None)
        assert target, f"demo.launch.py includes an unknown file: {source[:120]}"
        passed = _kw(call, "launch_arguments")
        if passed is None:
            continue
        # launch_arguments={...}.items()
        mapping = (
            passed.func.value
            if isinstance(passed, ast.Call) and isinstance(passed.func, ast.Attribute)
            else passed
        )
        assert isinstance(mapping, ast.Dict), "launch_arguments must be a literal dict(...).items()"
        keys = {_literal(k) for k in mapping.keys}
        missing = keys - declared_arguments(LAUNCH_DIR / target)
        assert not missing, f"demo passes {sorted(missing)} that {target} does not declare"


@pytest.mark.parametrize(
    ("yaml_name", "package", "executable"),
    [
        ("edge.yaml", "laecips_edge", "edge_node"),
        ("cloud.yaml", "laecips_cloud", "cloud_node"),
        ("trainer.yaml", "laecips_cloud", "trainer_node"),
    ],
)
def test_parameter_files_only_set_declared_parameters(yaml_name: str, package: str, executable: str) -> None:
    path = CONFIG_DIR / yaml_name
    assert path.is_file(), f"config/{yaml_name} is missing"
    module = console_scripts(packages()[package])[executable]
    declared = declared_parameters(module) | IMPLICIT_PARAMETERS
    for node, names in yaml_parameters(path).items():
        unknown = names - declared
        assert not unknown, f"config/{yaml_name} [{node}] sets undeclared parameters {sorted(unknown)}"


def test_edge_yaml_covers_the_tunable_parameters() -> None:
    module = console_scripts(packages()["laecips_edge"])["edge_node"]
    declared = declared_parameters(module)
    for expected in (
        "image_topic",
        "threshold",
        "exploration_rate",
        "max_in_flight",
        "deadline_s",
        "edge_model.path",
    ):
        assert expected in declared
    (names,) = yaml_parameters(CONFIG_DIR / "edge.yaml").values()
    assert {"threshold", "deadline_s", "max_in_flight", "edge_model.name", "num_classes"} <= names


def _argument_default(path: Path, name: str) -> str | None:
    """Literal default_value of a launch file's DeclareLaunchArgument `name` (None when not a literal)."""
    (arg,) = [c for c in launch_calls(path, "DeclareLaunchArgument") if _first_string(c) == name]
    return _literal(_kw(arg, "default_value"))


def _included_arguments(path: Path, target: str) -> dict[str, str]:
    """launch_arguments a launch file passes to the included `target` -> the source of each value."""
    for call in launch_calls(path, "IncludeLaunchDescription"):
        if target in ast.unparse(call):
            passed = _kw(call, "launch_arguments")
            assert isinstance(passed, ast.Call) and isinstance(passed.func, ast.Attribute)
            mapping = passed.func.value
            assert isinstance(mapping, ast.Dict)
            return {_literal(k) or "": ast.unparse(v) for k, v in zip(mapping.keys, mapping.values)}
    raise AssertionError(f"{path.name} does not include {target}")


def test_rviz_config_shows_camera_overlay_and_labels() -> None:
    rviz = yaml.safe_load((CONFIG_DIR / "laecips.rviz").read_text())
    manager = rviz["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"]
    images = {
        d["Topic"]["Value"]: d for d in manager["Displays"] if d["Class"] == "rviz_default_plugins/Image"
    }
    (edge_params,) = yaml_parameters(CONFIG_DIR / "edge.yaml").values()
    own = yaml.safe_load((CONFIG_DIR / "edge.yaml").read_text())["/**"]["ros__parameters"]["image_topic"]
    assert not own.startswith("/"), "edge.yaml's camera topic must be relative (follows the namespace)"
    # edge.launch.py's own camera default is relative too (a launch argument default overrides the YAML);
    # demo.launch.py passes the bag's absolute topic explicitly, and RViz shows that one.
    edge_camera = _argument_default(LAUNCH_DIR / "edge.launch.py", "image_topic")
    assert edge_camera == own, f"edge.launch.py's image_topic {edge_camera!r} is not edge.yaml's {own!r}"
    demo_camera = _argument_default(LAUNCH_DIR / "demo.launch.py", "image_topic")
    assert demo_camera and demo_camera.startswith("/"), "the demo's bag topic is absolute (record-bag's)"
    assert demo_camera in images, f"RViz does not show the demo's camera topic {demo_camera}"
    assert _included_arguments(LAUNCH_DIR / "demo.launch.py", "edge.launch.py")["image_topic"] == (
        "LaunchConfiguration('image_topic')"
    ), "demo.launch.py must pass its image_topic to edge.launch.py (else the edge reads the relative default)"
    # The edge launch file runs edge_node in the namespace <robot_id>; its topics are ~/overlay, ~/labels.
    (robot_arg,) = [
        c
        for c in launch_calls(LAUNCH_DIR / "edge.launch.py", "DeclareLaunchArgument")
        if _first_string(c) == "robot_id"
    ]
    robot = _literal(_kw(robot_arg, "default_value"))
    (edge_call,) = launch_calls(LAUNCH_DIR / "edge.launch.py", "Node")
    node_name = _literal(_kw(edge_call, "name"))
    source = console_scripts(packages()["laecips_edge"])["edge_node"].read_text()
    for topic in ("overlay", "labels"):
        assert f'"~/{topic}"' in source
        assert f"/{robot}/{node_name}/{topic}" in images, sorted(images)
    # The edge publishes ~/overlay and ~/labels reliably; RViz must subscribe compatibly.
    for topic, display in images.items():
        if topic.endswith(("/overlay", "/labels")):
            assert display["Topic"]["Reliability Policy"] in ("Reliable", "Best Effort")
    assert "image_topic" in edge_params


def test_resolver_follows_the_ament_index_and_argument_defaults(tmp_path: Path) -> None:
    """launch_resolve finds packages only through their index marker and chains argument defaults."""
    from launch_resolve import Dynamic, LaunchResolver, UnresolvedError

    share = tmp_path / "install" / "pkg_a" / "share"
    (share / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (share / "ament_index" / "resource_index" / "packages" / "pkg_a").touch()
    launch = tmp_path / "x.launch.py"
    launch.write_text(
        "CONF = PathJoinSubstitution([FindPackageShare('pkg_a'), 'config'])\n"
        "def generate_launch_description():\n"
        "    return [DeclareLaunchArgument('a', default_value=PathJoinSubstitution([CONF, 'a.yaml'])),\n"
        "            DeclareLaunchArgument('b', default_value=LaunchConfiguration('a')),\n"
        "            DeclareLaunchArgument('c', default_value=PythonExpression(['1'])),\n"
        "            Node(package='pkg_a', executable='run')]\n"
    )
    resolved = LaunchResolver(tmp_path / "install").resolve(launch)
    expected = str(share / "pkg_a" / "config" / "a.yaml")
    assert resolved.arguments["a"] == resolved.arguments["b"] == expected
    assert isinstance(resolved.arguments["c"], Dynamic)
    assert resolved.nodes == [("pkg_a", "run", tmp_path / "install" / "pkg_a" / "lib" / "pkg_a" / "run")]
    launch.write_text(launch.read_text().replace("FindPackageShare('pkg_a')", "FindPackageShare('pkg_b')"))
    with pytest.raises(UnresolvedError, match="pkg_b"):
        LaunchResolver(tmp_path / "install").resolve(launch)


def test_shipped_upload_rate_is_the_evaluations_budget() -> None:
    """edge.yaml, the edge's default and `laecips eval`'s CUR budget are one number (issue 11, item 4)."""
    from laecips_core.evaluation.run_config import EvalConfig
    from laecips_core.services.edge_config import EdgeConfig

    shipped = yaml.safe_load((CONFIG_DIR / "edge.yaml").read_text())["/**"]["ros__parameters"]
    assert shipped["target_upload_rate"] == EdgeConfig().target_upload_rate == EvalConfig().cur_budget > 0
    assert shipped["num_classes"] == 0 and shipped["robot_id"] == ""  # M: the bundle; id: the namespace


@pytest.mark.parametrize("yaml_name", ["edge.yaml", "cloud.yaml", "trainer.yaml"])
def test_parameter_files_are_keyed_by_wildcard(yaml_name: str) -> None:
    """`/**` keys: a node started in a namespace or under another name keeps the shipped parameters."""
    assert list(yaml_parameters(CONFIG_DIR / yaml_name)) == ["/**"]


def test_rviz_label_range_follows_the_bundle() -> None:
    """The class-id display stretches the ids it sees (no fixed 0..15, whatever M the bundle has)."""
    rviz = yaml.safe_load((CONFIG_DIR / "laecips.rviz").read_text())
    (labels,) = [
        d for d in rviz["Visualization Manager"]["Displays"] if d["Topic"]["Value"].endswith("/labels")
    ]
    assert labels["Normalize Range"] is True

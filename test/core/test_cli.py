"""The ``laecips`` command: subcommands, plugin discovery, one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import metadata

import pytest
from laecips_core.evaluation.run_config import METHODS
from laecips_core.storage import bags

from laecips_core import benchmark as data
from laecips_core import cli


def test_quick_eval_through_the_console_script(tmp_path):
    out = tmp_path / "quick"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # like conftest: one torch thread on a shared CI box
    proc = subprocess.run(
        ["laecips", "eval", "--quick", "--out", str(out), "--no-progress", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LAECIPS" in proc.stdout and f"results written to {out}" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == set(METHODS)
    for name, m in results["methods"].items():
        assert 0.0 <= m["miou"] <= 1.0 and 0.0 <= m["cur"] <= 1.0 and m["latency_s"] > 0, name
        assert len(m["tasks"]) == 5
    assert results["config"]["quick"] is True
    assert "formula" in results["latency"] and results["latency"]["bandwidth_mbps"] == 4.0
    for name in ("table1.md", "table2.md", "fig5_class_frequency.png", "fig8_miou_vs_cur.png"):
        assert (out / name).stat().st_size > 100
    assert (out / "fig9_per_task.png").is_file() and (out / "qualitative.png").is_file()
    table2 = (out / "table2.md").read_text()
    assert all(f"task {t} mIoU" in table2 for t in range(1, 6)) and "task 0" not in table2
    assert not list(out.glob("laecips-replay-*")), "replay buffers must be cleaned up"
    # --no-progress: no tqdm, but a line per task and per method with the elapsed time.
    lines = [line for line in proc.stdout.splitlines() if line.startswith("eval: ")]
    assert sum("starts at frame" in line for line in lines) == 5
    assert sum(line.startswith("eval: task id 4 ") and " frames in " in line for line in lines) == 9
    assert all("elapsed" in line for line in lines) and "it/s" not in proc.stderr


def test_record_bag_options(tmp_path, capsys):
    bag = tmp_path / "b"
    args = ["record-bag", str(bag), "--storage", "sqlite3", "--compressed", "--task-type", "int32"]
    args += ["--frames-per-task", "2", "--num-tasks", "2", "--width", "48", "--height", "32", "--no-progress"]
    assert cli.main(args) == 0
    assert "wrote 4 frames" in capsys.readouterr().out
    info = bags.inspect_bag(bag)
    assert info.topics["/camera/image_raw"].msgtype == bags.COMPRESSED_TYPE
    assert info.topics["/laecips/task"].msgtype == "std_msgs/msg/Int32"
    assert list(bag.glob("*.db3")) and info.class_names == list(data.CLASSES)
    frames = list(bags.read_bag_frames(bag))
    assert frames[0].image.shape == (32, 48, 3)


def test_errors_are_one_line_on_stderr_with_status_2(tmp_path, capsys):
    assert cli.main(["eval", "--bag", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("laecips eval: error:") and "does not exist" in err and "\n" not in err
    bag = bags.write_benchmark_bag(
        tmp_path / "bag", data.BenchmarkConfig(frames_per_task=1, width=16, height=16), progress=False
    )
    assert cli.main(["record-bag", str(bag), "--no-progress"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert (
        cli.main(["eval", "--bag", str(bag), "--task-boundaries", "3,1", "--out", str(tmp_path / "o")]) == 2
    )
    assert "strictly ascending" in capsys.readouterr().err
    assert cli.main(["eval", "--methods", "LAECIPS,NOPE", "--out", str(tmp_path / "o")]) == 2
    assert "unknown method" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", "--cur-budget", "1.5"])
    assert exc.value.code == 2


def test_keygen_writes_a_key_pair(tmp_path, capsys):
    assert cli.main(["keygen", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    priv = out.split("private key:")[1].split()[0]
    pub = out.split("public key:")[1].split()[0]
    assert os.path.isfile(priv) and os.path.isfile(pub) and priv != pub


def test_sign_writes_a_sidecar_the_edge_accepts_and_a_changed_bundle_fails(tmp_path, capsys):
    """`laecips keygen` + `laecips sign`: the starting bundle of a node with trusted_public_key."""
    from bundle_helpers import write_tiny_bundle
    from laecips_core.errors import WeightsError
    from laecips_core.storage import bundle_loading, signing

    assert cli.main(["keygen", str(tmp_path / "keys")]) == 0
    pub = capsys.readouterr().out.split("public key:")[1].split()[0]
    bundle = write_tiny_bundle(tmp_path / "start.safetensors", 0, 4)
    assert cli.main(["sign", str(bundle), "--key", str(tmp_path / "keys" / "laecips.key")]) == 0
    assert f"{bundle}.sig" in capsys.readouterr().out
    signature = signing.read_signature(bundle)
    assert signature
    bundle_loading.load_bundle(bundle, public_key=pub, signature=signature)
    other = write_tiny_bundle(tmp_path / "other.safetensors", 1, 4)
    with pytest.raises(WeightsError):
        bundle_loading.load_bundle(other, public_key=pub, signature=signature)
    (tmp_path / "junk.safetensors").write_bytes(b"not a bundle")
    assert (
        cli.main(
            ["sign", str(tmp_path / "junk.safetensors"), "--key", str(tmp_path / "keys" / "laecips.key")]
        )
        == 2
    )
    assert not (tmp_path / "junk.safetensors.sig").exists()


class _FakeEntryPoint:
    def __init__(self, name: str, target) -> None:
        self.name, self.value, self._target = name, f"fake:{name}", target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_plugin_subcommands_are_discovered_and_broken_ones_only_warn(monkeypatch, capsys):
    def register(subparsers: argparse._SubParsersAction) -> None:
        p = subparsers.add_parser("hello", help="a plugin command")
        p.add_argument("--who", default="robot")
        p.set_defaults(handler=lambda args: print(f"hello {args.who}") or 0)

    fakes = [
        _FakeEntryPoint("hello", register),
        _FakeEntryPoint("broken", ImportError("no module named rclpy")),
    ]

    def entry_points(*, group: str):
        assert group == cli.PLUGIN_GROUP
        return fakes

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    assert cli.main(["hello", "--who", "edge"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "hello edge"
    assert "plugin command 'broken'" in captured.err and "no module named rclpy" in captured.err


def test_installed_play_bag_plugin_without_importing_rclpy():
    code = (
        "import sys; from laecips_core import cli; p = cli.build_parser();"
        "sub = next(a for a in p._actions if a.dest == 'command');"
        "print('play-bag' in sub.choices, 'rclpy' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.split() == ["True", "False"], proc.stderr[-2000:]


def test_pretrain_returns_the_cached_test_profile(capsys):
    assert cli.main(["pretrain", "--profile", "test", "--no-progress"]) == 0
    path = capsys.readouterr().out.split("weights:")[1].strip()
    assert path.endswith(".safetensors") and os.path.isfile(path)


def test_export_onnx_adds_signed_graphs_and_extracts_them_for_trtexec(tmp_path, capsys):
    from bundle_helpers import write_tiny_bundle
    from laecips_core.storage import bundle_loading, signing

    plain = write_tiny_bundle(tmp_path / "v2.safetensors", 2, 4)
    private, public = signing.generate_keypair(tmp_path / "keys")
    argv = ["export-onnx", str(plain), "--size", "32x48", "--stream-norm-prior", "8", "--key", str(private)]
    assert cli.main(argv) == 0
    out = tmp_path / "v2-onnx.safetensors"
    assert str(out) in capsys.readouterr().out
    graphs = bundle_loading.load_onnx_graphs(
        out, public_key=public, signature=signing.read_signature(out)
    )  # the sidecar written with --key verifies
    assert (graphs.version, graphs.stream_norm_prior) == (2, 8.0)
    assert cli.main(["export-onnx", str(out), "--extract", str(tmp_path / "graphs")]) == 0
    assert (tmp_path / "graphs" / "f.onnx").read_bytes() == graphs.f
    assert (tmp_path / "graphs" / "h.onnx").read_bytes() == graphs.h
    assert cli.main(["export-onnx", str(plain), "--extract", str(tmp_path / "none")]) == 2
    assert "carries no ONNX graphs" in capsys.readouterr().err
    assert cli.main(["export-onnx", str(plain), "--size", "big"]) == 2
    assert "--size must be HxW" in capsys.readouterr().err

"""Tests of laecips_core.training.job: one Algorithm 2 update from a replay buffer to a stored bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from bundle_helpers import write_tiny_bundle
from laecips_core.algo.bundles import build_models
from laecips_core.errors import ConfigError
from laecips_core.files import sha256_file
from laecips_core.lvm.base import masks_from_label_map
from laecips_core.services.stores import replay_path, reports_dir, seed_store, store_dir
from laecips_core.storage.bags import write_frames_bag
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.jobspec import JobSpec
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.storage.signing import read_signature
from laecips_core.storage.weight_store import WeightStore
from laecips_core.training.job import load_validation_bag, main, run_job
from toy_data import toy_frames

M = 3
SIZE = (32, 48)
TRAINER = {
    "epochs": 1,
    "lr": 1e-2,
    "batch_size": 4,
    "input_size": list(SIZE),
    "recipe": "paper",
    "min_improvement": -1.0,  # accept whatever the gate says, unless a collapse guard fires
    "min_class_ratio": 0.0,
    "min_entropy_ratio": 0.0,
}


@pytest.fixture(scope="module")
def initial_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 0 of tiny_fcn f + MinerNet h (h at 32x32, written to the metadata)."""
    folder = tmp_path_factory.mktemp("bundles")
    return write_tiny_bundle(folder / "v0.safetensors", 0, M, miner_in_size=(32, 32))


def _spec(root: Path, **changes: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "robot_id": "robot1",
        "replay_path": str(replay_path(root / "replay", "robot1")),
        "store_dir": str(store_dir(root / "weights", "robot1")),
        "reports_dir": str(reports_dir(root / "weights", "robot1")),
        "trainer": dict(TRAINER),
        "progress_path": str(root / "job" / "progress.json"),
    }
    fields.update(changes)
    # no job folder made here: run_job creates the folder of its progress file
    return JobSpec(**fields)


def _fill(spec: JobSpec, n: int, seed: int = 0) -> list[int]:
    """n toy frames with F(x) = ground truth and SAM(x) = its regions; returns the sample ids."""
    images, labels = toy_frames(n, seed, SIZE)
    with ReplayBuffer(spec.replay_path) as buffer:
        return [
            buffer.append(
                image,
                label,
                robot_id=spec.robot_id,
                model_version=0,
                timestamp=float(i),
                masks=masks_from_label_map(label.astype(np.int64)),
            )
            for i, (image, label) in enumerate(zip(images, labels))
        ]


def _seeded(root: Path, initial_bundle: Path, **changes: Any) -> JobSpec:
    spec = _spec(root, **changes)
    seed_store(WeightStore(spec.store_dir), initial_bundle)
    return spec


def test_an_accepted_update_becomes_the_next_version_with_its_report(
    tmp_path: Path, initial_bundle: Path
) -> None:
    spec = _seeded(tmp_path, initial_bundle)
    ids = _fill(spec, 6)
    out = run_job(spec)
    assert out["accepted"], out["reason"]
    assert (out["version"], out["parent_version"]) == (1, 0)
    assert out["trained_ids"] == ids
    store = WeightStore(spec.store_dir)
    assert store.versions() == [0, 1] and out["path"] == str(store.path(1))
    assert out["sha256"] == sha256_file(store.path(1))
    assert read_signature(store.path(1)) is None  # the job stores it unsigned; the trainer service signs
    bundle = load_bundle(store.path(1))
    meta = bundle.metadata
    assert (meta["version"], meta["parent_version"], meta["robot_id"]) == ("1", "0", "robot1")
    assert meta["miner_in_size"] == "[32, 32]" and meta["train_reason"] == out["reason"][:500]
    parent = load_bundle(store.path(0))
    assert meta["created"] != "" and meta["format"] == parent.metadata["format"]
    f, h = build_models(bundle)  # f and h of the new bundle load into the named architecture
    assert h.in_size == (32, 32) and f.num_classes == M
    changed = [k for k in parent.f_state if not np.array_equal(parent.f_state[k], bundle.f_state[k])]
    assert changed, "the new bundle carries f's old weights"
    report = json.loads(Path(out["report_path"]).read_text())
    assert Path(out["report_path"]).name == "v00000001.json" and Path(out["plot_path"]).is_file()
    assert (report["robot_id"], report["parent_version"], report["n_samples"], report["version"]) == (
        "robot1",
        0,
        6,
        1,
    )
    assert report["accepted"] is True and len(report["loss_f"]) == 1
    progress = json.loads(Path(spec.progress_path).read_text())
    assert progress["phase"] == "done" and progress["version"] == 1 and progress["accepted"] is True
    with ReplayBuffer(spec.replay_path) as buffer:
        assert len(buffer) == 6  # the job does not clear the buffer; the trainer service does


def test_a_refused_update_stores_nothing_but_its_report(tmp_path: Path, initial_bundle: Path) -> None:
    spec = _seeded(tmp_path, initial_bundle, progress_path="")
    ids = _fill(spec, 1)  # one sample: nothing to hold back, so the trainer refuses
    out = run_job(spec)
    assert not out["accepted"] and "need >= 2" in out["reason"]
    assert (out["version"], out["parent_version"], out["sha256"], out["path"]) == (0, 0, "", "")
    assert out["trained_ids"] == ids
    assert WeightStore(spec.store_dir).versions() == [0]
    report_path = Path(out["report_path"])
    assert report_path.name.startswith("refused_") and report_path.parent == Path(spec.reports_dir)
    assert json.loads(report_path.read_text())["version"] == 0
    assert not (tmp_path / "job" / "progress.json").exists()  # progress_path "" writes none


def test_max_samples_bounds_what_one_job_reads(tmp_path: Path, initial_bundle: Path) -> None:
    spec = _seeded(tmp_path, initial_bundle, max_samples=3)
    ids = _fill(spec, 5)
    out = run_job(spec)
    assert out["trained_ids"] == ids[:3]  # the oldest max_samples samples
    assert json.loads(Path(out["report_path"]).read_text())["n_samples"] == 3


def test_a_validation_bag_gates_on_ground_truth(tmp_path: Path, initial_bundle: Path) -> None:
    images, labels = toy_frames(3, 5, SIZE)
    frames = [
        SimpleNamespace(index=i, task_id=0, timestamp=1.0 + i, image=image, labels=label)
        for i, (image, label) in enumerate(zip(images, labels))
    ]
    bag = write_frames_bag(tmp_path / "val_bag", frames, ["bg", "red", "blue"], progress=False)
    got_images, got_labels = load_validation_bag(bag)
    assert len(got_images) == 3
    np.testing.assert_array_equal(got_images[1], images[1])
    np.testing.assert_array_equal(got_labels[2], labels[2])
    spec = _seeded(tmp_path, initial_bundle, validation_bag=str(bag))
    _fill(spec, 4)
    out = run_job(spec)
    report = json.loads(Path(out["report_path"]).read_text())
    assert report["metric"] == "validation" and "validation" in report["gate"]


def test_a_bag_without_labels_is_no_validation_bag(tmp_path: Path) -> None:
    images, _ = toy_frames(2, 6, SIZE)
    frames = [
        SimpleNamespace(index=i, task_id=0, timestamp=1.0 + i, image=image, labels=None)
        for i, image in enumerate(images)
    ]
    bag = write_frames_bag(tmp_path / "unlabelled", frames, ["bg", "red", "blue"], progress=False)
    with pytest.raises(ConfigError, match="no frame with labels"):
        load_validation_bag(bag)


def test_main_writes_the_result_file_and_says_accepted_or_refused(
    tmp_path: Path, initial_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _seeded(tmp_path, initial_bundle)
    _fill(spec, 1)
    (tmp_path / "spec.json").write_text(spec.to_json())
    result = tmp_path / "result.json"
    assert main(["--spec", str(tmp_path / "spec.json"), "--result", str(result)]) == 0
    data = json.loads(result.read_text())
    assert data["accepted"] is False and data["version"] == 0 and "need >= 2" in data["reason"]
    assert "training job refused: version 0" in capsys.readouterr().out


def test_main_reports_a_bad_spec_in_the_result_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "spec.json").write_text('{"robot_id": "a/b"}')
    result = tmp_path / "result.json"
    assert main(["--spec", str(tmp_path / "spec.json"), "--result", str(result)]) == 1
    assert json.loads(result.read_text())["error"].startswith("ConfigError: training job spec is not valid")
    assert main(["--spec", str(tmp_path / "missing.json"), "--result", str(result)]) == 1
    assert json.loads(result.read_text())["error"].startswith("FileNotFoundError")
    assert "training job failed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_args:
        main(["--spec", str(tmp_path / "spec.json")])
    assert bad_args.value.code == 2


def test_training_job_reports_errors_in_its_result_file(tmp_path: Path, initial_bundle: Path):
    """``python -m laecips_core.training.job`` (what the trainer service runs) on an empty store."""
    spec = _spec(tmp_path, trainer={"epochs": 1, "input_size": [32, 32]})
    (tmp_path / "spec.json").write_text(spec.to_json())
    argv = [sys.executable, "-m", "laecips_core.training.job", "--spec", str(tmp_path / "spec.json"),
            "--result", str(tmp_path / "result.json"), "--threads", "1"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    error = json.loads((tmp_path / "result.json").read_text())["error"]
    assert error.startswith("WeightsError") and "empty" in error and "seed it" in error
    assert "training job failed" in done.stderr


def test_with_onnx_prior_the_new_bundle_ships_graphs_traced_at_the_training_size(
    tmp_path: Path, initial_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from laecips_core.storage.bundle_loading import load_onnx_graphs
    from laecips_core.training import job

    sizes: list[tuple[int, int]] = []
    real = job.bundle_with_onnx

    def recording(bundle: Any, prior: float, example_hw: tuple[int, int]) -> bytes:
        sizes.append(tuple(example_hw))
        return real(bundle, prior, example_hw)

    monkeypatch.setattr(job, "bundle_with_onnx", recording)
    spec = _seeded(tmp_path, initial_bundle)
    _fill(spec, 6)
    out = run_job(spec, onnx_prior=4.0)
    assert out["accepted"], out["reason"]
    graphs = load_onnx_graphs(out["path"], expected_sha256=out["sha256"])
    assert (graphs.version, graphs.stream_norm_prior) == (1, 4.0) and sizes == [SIZE]
    parent = load_bundle(WeightStore(spec.store_dir).path(0))
    assert not parent.onnx  # the seed is kept as it was

"""What the demo proves (evaluation.demo_report): update gain of f, dropped uploads, the exit verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import write_tiny_bundle
from laecips_core.errors import WeightsError
from laecips_core.evaluation import demo_report
from laecips_core.storage import signing, weight_store

from laecips_core import files

M = 8
HW = (48, 64)  # EdgePredictor needs >= 32 pixels a side


# ------------------------------------------------------------------------------------------- verdict


def _gain(before: float | None, after: float | None, frames: int = 10) -> demo_report.UpdateGain:
    return demo_report.UpdateGain(frames, before, after, {1: frames} if frames else {})


def test_verdict_update_helped_is_success() -> None:
    verdict = demo_report.decide_exit(True, _gain(0.40, 0.55))
    assert verdict.status == demo_report.EXIT_OK == 0
    assert "0.4000 -> 0.5500" in verdict.message
    assert demo_report.decide_exit(True, _gain(0.5, 0.5)).status == 0  # "did not help" is strictly worse


def test_verdict_update_did_not_help_fails_with_advice() -> None:
    verdict = demo_report.decide_exit(True, _gain(0.55, 0.40))
    assert verdict.status == demo_report.EXIT_UPDATE_DID_NOT_HELP
    assert "did not help" in verdict.message and "--epochs" in verdict.message


def test_verdict_no_frame_after_update_fails_with_advice() -> None:
    for gain in (None, _gain(None, None, frames=0)):
        verdict = demo_report.decide_exit(True, gain)
        assert verdict.status == demo_report.EXIT_NO_FRAMES_AFTER_UPDATE
        assert "--max-passes" in verdict.message


def test_verdict_no_update_keeps_its_code() -> None:
    verdict = demo_report.decide_exit(False, None)
    assert verdict.status == demo_report.EXIT_NO_UPDATE == 3 and "trainer.log" in verdict.message
    codes = {
        demo_report.EXIT_OK,
        demo_report.EXIT_FAILED,
        demo_report.EXIT_NO_UPDATE,
        demo_report.EXIT_NO_FRAMES_AFTER_UPDATE,
        demo_report.EXIT_UPDATE_DID_NOT_HELP,
        130,  # interrupted
    }
    assert len(codes) == 6  # every outcome has its own exit status


# ------------------------------------------------------------------------------------ frames, drops


def test_frames_since_update_starts_at_the_first_new_version() -> None:
    processed = [(1, 0), (2, 0), (3, 1), (1, 1), (2, 2)]
    assert demo_report.frames_since_update(processed, 0) == [(3, 1), (1, 1), (2, 2)]
    assert demo_report.frames_since_update([(1, 0), (2, 0)], 0) == []
    assert demo_report.frames_since_update([], 0) == []


def test_upload_drops_share_and_bound() -> None:
    ok = demo_report.upload_drops({"uploaded": "40", "dropped_upload": "3"})
    assert ok == {"count": 3, "uploads": 40, "share": pytest.approx(0.075), "bound": 0.1, "met": True}
    bad = demo_report.upload_drops({"uploaded": "40", "dropped_upload": "4"})
    assert bad["share"] == pytest.approx(0.1) and bad["met"] is False
    none = demo_report.upload_drops({})
    assert none["share"] is None and none["met"] is False and none["count"] == 0


# ------------------------------------------------------------------------------------- update gain


@pytest.fixture(scope="module")
def signed_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(starting bundle v0 labelling everything 2, a store with v1 labelling everything 5, public key)."""
    root = tmp_path_factory.mktemp("gain")
    priv, pub = signing.generate_keypair(root / "keys")
    start = write_tiny_bundle(root / "factory" / "start.safetensors", 0, M, label=2)
    store = weight_store.WeightStore(root / "store")
    v1 = write_tiny_bundle(root / "v1.safetensors", 1, M, label=5)
    for path in (start, store.put(v1.read_bytes(), 1)):
        signing.write_signature(path, signing.sign_digest(priv, files.sha256_file(path)))
    return start, store.directory, pub


def _frames(count: int, gt_class: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (*HW, 3), dtype=np.uint8) for s in range(count)}
    truth = {}
    for s in range(count):
        gt = np.full(HW, gt_class, np.uint8)
        gt[:, : HW[1] // 4] = 2 if gt_class != 2 else 5  # a quarter of the other class
        truth[s] = gt
    return images, truth


def _labeller(signed_store: tuple[Path, Path, Path], calls: list[int]):
    start, store, pub = signed_store
    resolve = demo_report.bundle_resolver(0, start, [store])

    def make(version: int):
        calls.append(version)
        return demo_report.f_labeller(resolve(version), HW, pub)

    return make


@pytest.mark.parametrize(("gt_class", "helps"), [(5, True), (2, False)])
def test_update_gain_scores_start_and_run_weights_on_the_same_frames(signed_store, gt_class, helps) -> None:
    images, truth = _frames(3, gt_class)
    # The edge ran v0 on frame 0, then v1 on 1, 2, and on 0 and 1 again (a second bag pass).
    processed = [(0, 0), (1, 1), (2, 1), (0, 1), (1, 1)]
    since = demo_report.frames_since_update(processed, 0)
    del truth[2]  # a frame without ground truth is not scored
    calls: list[int] = []
    gain = demo_report.score_update_gain(
        since,
        start_version=0,
        images=images,
        truth=truth,
        labeller=_labeller(signed_store, calls),
        num_classes=M,
    )
    assert sorted(calls) == [0, 1]  # each version's f is built once
    assert gain.frames == 3 and gain.frames_by_version == {1: 3}
    # f labels everything one class; the truth is 3/4 one class and 1/4 the other: mIoU 0.75 / 2.
    right, wrong = 0.75 / 2, 0.25 / 2
    assert gain.miou_after == pytest.approx(right if helps else wrong)
    assert gain.miou_before == pytest.approx(wrong if helps else right)
    verdict = demo_report.decide_exit(True, gain)
    assert verdict.status == (demo_report.EXIT_OK if helps else demo_report.EXIT_UPDATE_DID_NOT_HELP)
    assert gain.as_report() == {"frames": 3, "miou_before": gain.miou_before, "miou_after": gain.miou_after}


def test_update_gain_without_frames_after_update(signed_store) -> None:
    images, truth = _frames(2, 5)
    calls: list[int] = []
    gain = demo_report.score_update_gain(
        [],
        start_version=0,
        images=images,
        truth=truth,
        labeller=_labeller(signed_store, calls),
        num_classes=M,
    )
    assert gain.as_report() == {"frames": 0, "miou_before": None, "miou_after": None} and calls == []
    assert demo_report.decide_exit(True, gain).status == demo_report.EXIT_NO_FRAMES_AFTER_UPDATE


def test_unlabelled_frames_are_not_counted(signed_store) -> None:
    images, _ = _frames(1, 5)
    truth = {0: np.full(HW, 255, np.uint8)}  # every pixel ignored: mIoU NaN
    gain = demo_report.score_update_gain(
        [(0, 1)],
        start_version=0,
        images=images,
        truth=truth,
        labeller=_labeller(signed_store, []),
        num_classes=M,
    )
    assert gain.frames == 0 and gain.miou_after is None


def test_bundles_must_exist_and_carry_a_valid_signature(signed_store, tmp_path: Path) -> None:
    start, store, pub = signed_store
    resolve = demo_report.bundle_resolver(0, start, [tmp_path / "missing", store])
    assert resolve(0) == start and resolve(1) == store / "bundle_v00000001.safetensors"
    with pytest.raises(WeightsError, match="no bundle of version 7"):
        resolve(7)
    unsigned = write_tiny_bundle(tmp_path / "unsigned.safetensors", 3, M, label=1)
    with pytest.raises(WeightsError, match="no .sig"):
        demo_report.f_labeller(unsigned, HW, pub)
    labels = demo_report.f_labeller(unsigned, HW, None)(np.zeros((*HW, 3), np.uint8))
    assert labels.shape == HW and (labels == 1).all()

"""simulate: every method on a hand-built stream (Eq. 2 split, F(x), Algorithm 2 updates), and its steps."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from laecips_core.algo import mining, thresholds
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.errors import ConfigError
from laecips_core.evaluation import simulate as sim_mod
from laecips_core.evaluation.miners import NoMiner
from laecips_core.evaluation.records import SharedFrame
from laecips_core.evaluation.run_config import METHODS, LinkModel
from laecips_core.evaluation.simulate import Replay, make_runs, method_step, miners_needed, shared_step
from laecips_core.storage.jobspec import TrainerConfig

M = 3  # the conftest stream's classes
SIZE = 32  # and its frame side
ALL_DELTAS = {"neural": 2.0, "mess": -1.0, "sm": -1.0, "spp": -1.0}


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.fixture()
def run_sim(start_models, mini_stream, halves_fuser, accept_all_trainer):
    def run(deltas, *, explore_rate=0.0, maxsize=2):
        f0, h0 = start_models
        return sim_mod.simulate(
            mini_stream(),
            f0,
            h0,
            M,
            deltas=deltas,
            fuser=halves_fuser,
            trainer=accept_all_trainer(maxsize),
            link=LinkModel(bandwidth_mbps=4.0, rtt_ms=10.0),
            explore_rate=explore_rate,
            progress=False,
        )

    return run


def test_methods_on_a_hand_built_stream(start_models, run_sim):
    f0, h0 = start_models
    before_f, before_h = _state(f0), _state(h0)
    # neural: every confidence in [0, 1] is <= 2 -> LAECIPS and DCSB upload every frame;
    # mess/sm/spp: no confidence is <= -1 -> MESS, SM, SPP never upload.
    sim = run_sim(ALL_DELTAS)
    runs = sim.methods
    assert set(runs) == set(METHODS)
    assert sim.task_order == [0, 1] and sim.num_frames == 6

    assert runs["EDGE"].uploaded == [False] * 6
    assert runs["EDGE"].total.latency[1:].sum() == 0.0  # no upload, cloud or download time
    assert runs["CLOUD"].uploaded == [True] * 6
    assert runs["CLOUD"].total.latency[0] == 0.0  # the robot computes nothing

    # DCSB uploads like LAECIPS but its weights never change.
    assert runs["DCSB"].uploaded == [True] * 6
    assert runs["DCSB"].versions == [0] * 6 and runs["DCSB"].f is None and not runs["DCSB"].train_events

    # LAECIPS: buffer 1, 2, 3 > maxsize=2 after frame 2 -> train -> new weights from frame 3 on.
    lae = runs["LAECIPS"]
    assert lae.versions == [0, 0, 0, 1, 1, 1]
    assert [e["frame"] for e in lae.train_events] == [2, 5]
    assert all(e["accepted"] and e["samples"] == 3 for e in lae.train_events)
    assert lae.version == 2
    changed = [
        k for k, v in lae.f.state_dict().items() if v.is_floating_point() and not torch.equal(v, before_f[k])
    ]
    assert changed, "LAECIPS's f must differ from the starting f after accepted updates"
    assert any(
        not torch.equal(v, before_h[k]) for k, v in lae.h.state_dict().items() if v.is_floating_point()
    )

    for name in ("MESS", "SM", "SPP"):
        assert runs[name].uploaded == [False] * 6 and runs[name].versions == [0] * 6

    # LAECIPS-paper: the same trigger, the paper's Eq. 13 recipe, no gate.
    paper = runs["LAECIPS-paper"]
    assert paper.versions == [0, 0, 0, 1, 1, 1] and all(e["accepted"] for e in paper.train_events)
    assert not torch.equal(paper.f.state_dict()["head.cbr.0.weight"], lae.f.state_dict()["head.cbr.0.weight"])

    # EDGE-TTA never uploads; its BatchNorm statistics follow the stream every maxsize frames.
    tta = runs["EDGE-TTA"]
    assert tta.uploaded == [False] * 6 and tta.total.latency[1:].sum() == 0.0
    assert tta.versions == [0, 0, 0, 1, 1, 2]
    tta_state = tta.f.state_dict()
    assert all(
        torch.equal(v, before_f[k])
        for k, v in tta_state.items()
        if "running_" not in k and "num_batches" not in k
    )
    assert any(not torch.equal(v, before_f[k]) for k, v in tta_state.items() if "running_mean" in k)

    # The shared starting models are never modified.
    assert all(torch.equal(v, before_f[k]) for k, v in f0.state_dict().items())
    assert all(torch.equal(v, before_h[k]) for k, v in h0.state_dict().items())

    # Frame mIoU of the fused output with a perfect LVM: CLOUD's F(x) is at least as good as EDGE's f(x)
    # wherever the edge result is wrong inside a half (Algorithm 1 takes a majority per mask).
    assert np.all(np.isfinite(runs["CLOUD"].frame_miou))
    summary = lae.total.summary()
    assert summary["cur"] == 1.0 and 0.0 <= summary["miou"] <= 1.0
    # Class pixels per task (Fig. 5): half the frame is class 0, the other half class 1 then 2.
    assert sim.class_pixels[0].tolist() == [3 * SIZE * SIZE // 2, 3 * SIZE * SIZE // 2, 0]
    assert sim.class_pixels[1].tolist() == [3 * SIZE * SIZE // 2, 0, 3 * SIZE * SIZE // 2]


def test_exploration_only_for_updating_methods(run_sim):
    sim = run_sim({"neural": -1.0, "mess": -1.0, "sm": -1.0, "spp": -1.0}, explore_rate=1.0, maxsize=100)
    assert sim.methods["DCSB"].uploaded == [False] * 6  # no update, so no exploration
    for name in ("LAECIPS", "MESS", "SM", "SPP"):
        assert sim.methods[name].uploaded == [True] * 6
        assert sim.methods[name].versions == [0] * 6  # maxsize 100 never triggers


def test_latency_accounting_follows_the_link_model(run_sim):
    sim = run_sim(ALL_DELTAS)
    link = LinkModel(bandwidth_mbps=4.0, rtt_ms=10.0)
    cloud = sim.methods["CLOUD"].total.summary()["latency_parts_s"]
    assert cloud["upload_s"] == pytest.approx(link.upload_s(sim.bytes["upload_bytes"]))
    assert cloud["download_s"] == pytest.approx(link.download_s(sim.bytes["download_bytes"]))
    assert cloud["cloud_s"] == pytest.approx(sim.timing["f_s"] + sim.timing["lvm_s"] + sim.timing["fusion_s"])
    for run in sim.methods.values():
        assert run.total.summary()["latency_s"] == pytest.approx(np.mean(run.latency))


def test_tracking_delta_follows_the_budget_quantile_of_recent_confidences(
    start_models, mini_stream, halves_fuser
):
    f0, h0 = start_models
    seed = {"neural": np.array([0.1, 0.2, 0.8, 0.9]), "mess": np.array([0.0, 0.0, 0.0, 0.0])}
    seed.update(sm=seed["mess"], spp=seed["mess"])
    deltas = {"neural": 0.5, "mess": -1.0, "sm": -1.0, "spp": -1.0}
    sim = sim_mod.simulate(
        mini_stream(),
        f0,
        h0,
        M,
        methods=("DCSB", "EDGE"),
        deltas=deltas,
        fuser=halves_fuser,
        trainer=TrainerConfig(epochs=1, maxsize=100, input_size=(SIZE, SIZE)),
        delta_window=3,
        calibration_conf=seed,
        progress=False,
    )
    run = sim.methods["DCSB"]
    assert run.target_rate == 0.5  # the starting delta 0.5 uploads half of the seed confidences
    window = list(seed["neural"][:3])
    for conf, delta, uploaded in zip(run.confidence, run.deltas, run.uploaded, strict=True):
        assert delta == thresholds.threshold_for_cur(np.asarray(window), 0.5)
        assert uploaded == (conf <= delta)
        window = (window + [conf])[-3:]


def test_upload_rate_after_an_update_stays_in_the_budget_band(start_models, mini_stream, halves_fuser):
    """Eq. 14 changes h (its confidences can all move toward 1): the tracking delta keeps the CUR."""
    f0, h0 = start_models
    rng = np.random.default_rng(0)
    calibration = {"neural": rng.uniform(0.3, 0.7, 10)}
    calibration.update(mess=calibration["neural"], sm=calibration["neural"], spp=calibration["neural"])
    sim = sim_mod.simulate(
        mini_stream(60),
        f0,
        h0,
        M,
        methods=("LAECIPS",),
        deltas={"neural": float(np.median(calibration["neural"]))},
        fuser=halves_fuser,
        trainer=TrainerConfig(
            epochs=2,
            maxsize=8,
            batch_size=4,
            lr=1e-2,
            beta=0.01,  # Eq. 14 optimum min(1, beta / l): far from the starting h
            min_improvement=-1.0,
            min_class_ratio=0.0,
            min_entropy_ratio=0.0,
            input_size=(SIZE, SIZE),
        ),
        delta_window=10,
        calibration_conf=calibration,
        progress=False,
    )
    run = sim.methods["LAECIPS"]
    assert run.target_rate == pytest.approx(0.5)
    first = run.versions.index(1)
    assert first < 40 and run.tracker is not None and run.tracker.resets >= 1
    after = np.asarray(run.uploaded[first:], float)
    assert 0.3 <= after.mean() <= 0.7, (after.mean(), run.versions)


# ----------------------------------------------------------------------------------- the steps


def test_miners_needed_adds_the_sweep_miners_and_checks_h_and_deltas(start_models):
    _, h0 = start_models
    assert miners_needed(("EDGE",), {}, h0) == ["mess", "neural", "sm", "spp"]
    assert miners_needed(("MESS", "CLOUD"), {"mess": 0.1}, None) == ["mess", "sm", "spp"]
    with pytest.raises(ConfigError, match="unknown method"):
        miners_needed(("FOO",), {}, h0)
    with pytest.raises(ConfigError, match="need a MinerNet h"):
        miners_needed(("DCSB",), {"neural": 0.5}, None)
    with pytest.raises(ConfigError, match=r"no threshold delta for miner\(s\) \['sm'\]"):
        miners_needed(("SM",), {}, h0)


def test_make_runs_sets_delta_updates_and_trackers(accept_all_trainer):
    trainer = accept_all_trainer(4)
    runs = make_runs(("LAECIPS", "DCSB", "EDGE-TTA", "CLOUD"), {"neural": 0.4}, trainer, 0, None)
    assert runs["LAECIPS"].updates and not runs["DCSB"].updates and not runs["CLOUD"].updates
    assert runs["DCSB"].delta == 0.4 and runs["DCSB"].miner_name == "neural"
    assert math.isnan(runs["CLOUD"].delta) and runs["CLOUD"].miner_name is None
    assert runs["EDGE-TTA"].tta_window is not None and runs["EDGE-TTA"].tta_window.maxlen == 5
    assert runs["LAECIPS"].tracker is None
    seed = {"neural": np.array([0.1, 0.3, 0.5, 0.7])}
    tracked = make_runs(("LAECIPS", "EDGE"), {"neural": 0.4}, trainer, 2, seed)
    assert tracked["LAECIPS"].target_rate == 0.5 and tracked["LAECIPS"].tracker is not None
    assert tracked["EDGE"].tracker is None
    with pytest.raises(ConfigError, match="calibration confidences"):
        make_runs(("LAECIPS",), {"neural": 0.4}, trainer, 2, None)


def test_shared_step_measures_f0_every_miner_and_the_fused_result(start_models, mini_stream, halves_fuser):
    f0, h0 = start_models
    frame = mini_stream()[0]
    miners = {"neural": mining.NeuralMiner(h0), "mess": mining.build_miner("mess", M)}
    shared = shared_step(frame, EdgePredictor(f0, NoMiner()), miners, halves_fuser)
    assert set(shared.conf) == set(shared.h_s) == {"neural", "mess"}
    assert 0.0 <= shared.conf["neural"] <= 1.0
    assert shared.masks.shape == (2, SIZE, SIZE) and shared.fused.shape == (SIZE, SIZE)
    # Algorithm 1 with the halves LVM: each half takes a single class.
    assert (
        len(np.unique(shared.fused[:, : SIZE // 2])) == 1
        and len(np.unique(shared.fused[:, SIZE // 2 :])) == 1
    )
    assert shared.upload_bytes > 0 and shared.download_bytes > 0 and shared.f_s >= 0.0
    oracle = AssistedInference.build("oracle", {})
    unlabelled = frame.__class__(0, 0, 0.0, frame.image, None)
    with pytest.raises(ConfigError, match="oracle LVM needs ground-truth"):
        shared_step(unlabelled, EdgePredictor(f0, NoMiner()), {}, oracle)


def _shared(conf: float) -> SharedFrame:
    """A hand-made SharedFrame: f0 says class 0 everywhere, F(x) class 1; known seconds and bytes."""
    edge = np.zeros((4, 4), np.uint8)
    base = SimpleNamespace(labels=edge, probs=np.zeros((M, 4, 4), np.float32), compute_s=0.25)  # f0's result
    return SharedFrame(
        base,
        {"neural": conf},
        {"neural": 0.5},
        np.ones((1, 4, 4), bool),
        2.0,
        edge + 1,
        0.125,
        500_000,
        50_000,
    )


def test_method_step_answers_and_latency_parts_per_method(mini_stream, halves_fuser, accept_all_trainer):
    link = LinkModel(bandwidth_mbps=4.0, rtt_ms=10.0)
    replay = Replay(torch.nn.Identity(), None, M, halves_fuser, accept_all_trainer(), link, 0.0)
    runs = make_runs(("EDGE", "CLOUD", "DCSB", "LAECIPS"), {"neural": 0.5}, replay.trainer, 0, None)
    frame = mini_stream()[0]
    edge = method_step(runs["EDGE"], frame, _shared(0.9), replay, explore=False)
    assert not edge.uploaded and edge.out.max() == 0 and math.isnan(edge.confidence)
    assert (edge.parts.edge_s, edge.parts.upload_s, edge.parts.cloud_s) == (0.25, 0.0, 0.0)
    cloud = method_step(runs["CLOUD"], frame, _shared(0.9), replay, explore=False)
    assert cloud.uploaded and cloud.out.min() == 1 and cloud.edge.max() == 0
    assert cloud.parts.edge_s == 0.0 and cloud.parts.cloud_s == 0.25 + 2.0 + 0.125
    assert cloud.parts.upload_s == pytest.approx(1.01) and cloud.parts.download_s == pytest.approx(0.1)
    easy = method_step(runs["DCSB"], frame, _shared(0.9), replay, explore=True)  # DCSB never explores
    assert not easy.uploaded and easy.out.max() == 0 and easy.confidence == 0.9
    assert easy.parts.edge_s == 0.25 + 0.5 and easy.parts.upload_s == 0.0
    hard = method_step(runs["DCSB"], frame, _shared(0.5), replay, explore=False)  # confidence <= delta
    assert hard.uploaded and hard.out.min() == 1 and hard.parts.cloud_s == 0.25 + 2.0 + 0.125
    explored = method_step(runs["LAECIPS"], frame, _shared(0.9), replay, explore=True)
    assert explored.uploaded and explored.out.min() == 1


def test_panel_method_prefers_laecips_then_the_first_mined_method(accept_all_trainer):
    trainer = accept_all_trainer()
    deltas = {"neural": 0.5, "mess": 0.5}
    assert sim_mod.panel_method(make_runs(("EDGE", "DCSB", "LAECIPS"), deltas, trainer, 0, None)) == "LAECIPS"
    assert sim_mod.panel_method(make_runs(("MESS", "CLOUD"), deltas, trainer, 0, None)) == "MESS"
    assert sim_mod.panel_method(make_runs(("EDGE",), deltas, trainer, 0, None)) == ""

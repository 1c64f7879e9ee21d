"""Algorithm 2 inside the replay: buffer, trigger, Eq. 13/14 training, weight swap; and EDGE-TTA's step."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.evaluation.miners import NoMiner
from laecips_core.evaluation.retrain import append_and_maybe_train, edge_tta_step
from laecips_core.evaluation.simulate import make_runs
from laecips_core.storage.replay import ReplayBuffer

M = 3  # the conftest stream's classes


def test_append_trains_when_the_buffer_passes_maxsize_and_swaps_accepted_weights(
    start_models, mini_stream, halves_fuser, accept_all_trainer
):
    f0, h0 = start_models
    trainer = accept_all_trainer(2)
    runs = make_runs(("LAECIPS", "MESS"), {"neural": 2.0, "mess": 2.0}, trainer, 0, None)
    before = {k: v.clone() for k, v in f0.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs.values():
            run.buffer = ReplayBuffer(Path(tmp) / f"{run.name}.sqlite", maxsize=100)
        for frame in mini_stream()[:3]:
            masks = halves_fuser.masks(frame.image, frame.labels)
            for run in runs.values():
                assert run.version == 0  # nothing swapped before the trigger
                append_and_maybe_train(run, frame, frame.labels, masks, f0, h0, M, trainer, 0.0)
        for run in runs.values():
            assert [e["frame"] for e in run.train_events] == [2] and run.train_events[0]["samples"] == 3
            assert run.version == 1 and run.predictor is not None and len(run.buffer) == 0
            run.buffer.close()
    assert runs["LAECIPS"].h is not None and runs["LAECIPS"].h is not h0
    assert runs["MESS"].h is not None and runs["MESS"].h.__class__.__name__ == "UnusedMiner"
    assert all(torch.equal(v, before[k]) for k, v in f0.state_dict().items())  # f0 untouched


def test_edge_tta_re_estimates_batchnorm_every_maxsize_frames(start_models, mini_stream, accept_all_trainer):
    f0, _ = start_models
    trainer = accept_all_trainer(2)
    run = make_runs(("EDGE-TTA",), {}, trainer, 0, None)["EDGE-TTA"]
    predictor = EdgePredictor(f0, NoMiner())
    versions = []
    for frame in mini_stream():
        labels, secs = edge_tta_step(run, frame.image, f0, predictor.predict(frame.image), trainer, 0.0)
        run.uploaded.append(False)  # simulate records one entry per frame
        versions.append(run.version)
        assert labels.shape == frame.labels.shape and secs >= 0.0
    # Re-estimated once the window holds maxsize + 1 frames, then every maxsize frames.
    assert versions == [0, 0, 0, 1, 1, 2] and run.f is not None and run.train_s > 0.0

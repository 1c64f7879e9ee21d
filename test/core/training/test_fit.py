"""Tests of continual training: Eq. 13 lowers L_f, Eq. 14 drives h to min(1, beta/l), gate, trigger."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from laecips_core.algo.mining import MinerNet, miner_target
from laecips_core.algo.models import build_edge_model, preprocess
from laecips_core.errors import ConfigError
from laecips_core.storage.jobspec import TrainerConfig, should_train
from laecips_core.training.fit import (
    evaluate_agreement,
    plot_report,
    recalibrate_batchnorm,
    resize_labels,
    seg_loss_per_image,
    train_edge,
    train_miner,
)
from torch import nn
from toy_data import toy_frames

M = 3
SIZE = (32, 48)


def _toy(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return toy_frames(n, seed, SIZE)


def _samples(images: list[np.ndarray], labels: list[np.ndarray]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(id=i + 1, image=im, labels=lab, timestamp=float(i))
        for i, (im, lab) in enumerate(zip(images, labels))
    ]


def _cfg(**kw: object) -> TrainerConfig:
    base: dict[str, object] = {"lr": 1e-2, "epochs": 8, "batch_size": 8, "input_size": SIZE, "seed": 0}
    base.update(kw)
    return TrainerConfig(**base)  # type: ignore[arg-type]


def _tiny_f(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_edge_model("tiny_fcn", M)


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _TinyMiner(nn.Module):
    """h for tests: mean logit per class -> MLP -> sigmoid confidence (B,)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_classes, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(logits.mean(dim=(2, 3)))).reshape(-1)


class _ChannelLogits(nn.Module):
    """A fixed f: logit_0 = a * x[:, 0], logit_1 = 0, so l = softplus(a * x0) against all-ones labels."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l0 = self.a * x[:, :1]
        return torch.cat([l0, torch.zeros_like(l0)], dim=1)


def test_config_validation() -> None:
    assert TrainerConfig().lr == 1e-4 and TrainerConfig().recipe in ("bn", "refuse", "ema", "rehearsal")
    for bad in (
        {"lr": 0.0},
        {"epochs": 0},
        {"beta": -1.0},
        {"holdout_fraction": 1.0},
        {"input_size": (240,)},
        {"optimizer": "lbfgs"},
        {"gate": "loss"},
        {"recipe": "magic"},
        {"fusion_order": "random"},
        {"confidence_threshold": 1.5},
        {"ema_decay": 1.0},
        {"maxtime_s": 0},
        {"num_threads": 0},
        {"device": "no-such-device"},
    ):
        with pytest.raises(ConfigError):
            TrainerConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("buffer_len", "last", "now", "expected"),
    [
        (0, 0.0, 1e9, False),  # empty buffer never trains, however old
        (100, 0.0, 10.0, False),  # == maxsize is not "exceeds"
        (101, 0.0, 10.0, True),  # size > maxsize
        (5, 0.0, 600.0, False),  # exactly maxtime
        (5, 0.0, 600.5, True),  # time since last training > maxtime
        (1, 50.0, 700.0, True),
    ],
)
def test_should_train(buffer_len: int, last: float, now: float, expected: bool) -> None:
    assert should_train(buffer_len, last, now, TrainerConfig(maxsize=100, maxtime_s=600.0)) is expected


def test_seg_loss_per_image_matches_cross_entropy_and_ignores_255() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 6)
    target = torch.randint(0, 4, (3, 5, 6))
    target[1, :2] = 255
    target[2] = 255
    loss = seg_loss_per_image(logits, target)
    assert loss.shape == (3,)
    ref0 = torch.nn.functional.cross_entropy(logits[:1], target[:1])
    ref1 = torch.nn.functional.cross_entropy(logits[1:2], target[1:2], ignore_index=255)
    assert torch.allclose(loss[0], ref0) and torch.allclose(loss[1], ref1)
    assert float(loss[2]) == 0.0


def test_resize_labels_nearest_keeps_class_set() -> None:
    lab = np.zeros((48, 64), np.uint16)
    lab[:, 32:] = 300
    out = resize_labels([lab], (24, 32))
    assert out.shape == (1, 24, 32) and set(np.unique(out)) == {0, 300}
    assert (out[0, :, :16] == 0).all() and (out[0, :, 16:] == 300).all()


def test_train_edge_lowers_loss_and_raises_agreement() -> None:
    images, labels = _toy(24, seed=1)
    f = _tiny_f()
    cfg = _cfg(epochs=10)
    before = evaluate_agreement(f, images, labels, cfg)
    losses = train_edge(f, images, labels, cfg, progress=False)
    after = evaluate_agreement(f, images, labels, cfg)
    assert len(losses) == cfg.epochs and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.6 * losses[0]
    assert after["pixel_acc"] > before["pixel_acc"] and after["miou"] > before["miou"] + 0.1


def test_train_edge_rejects_labels_beyond_num_classes() -> None:
    images, labels = _toy(2, seed=1)
    labels[0][0, 0] = M  # class M does not exist in f (255 would be "ignore")
    with pytest.raises(ConfigError, match="classes outside"):
        train_edge(_tiny_f(), images, labels, _cfg(epochs=1), progress=False)


def test_train_miner_drives_h_to_min_one_beta_over_loss() -> None:
    # Frames whose channel-0 level fixes f's per-image loss l_i by construction (all labels = class 1).
    levels = np.linspace(0, 255, 16).astype(np.uint8)
    images = [np.stack([np.full((8, 8), v, np.uint8)] * 3, axis=-1) for v in levels]
    labels = [np.ones((8, 8), np.uint8) for _ in levels]
    f = _ChannelLogits(a=2.0)
    f_before = {k: v.clone() for k, v in f.state_dict().items()}
    torch.manual_seed(0)
    h = _TinyMiner(2)
    beta = 0.5
    cfg = TrainerConfig(lr=2e-2, epochs=400, batch_size=16, beta=beta, input_size=(8, 8))
    losses = train_miner(f, h, images, labels, cfg, progress=False)
    assert losses[-1] < losses[0]
    assert _same_state(f_before, f.state_dict()) and not f.training  # f frozen

    with torch.no_grad():
        x = preprocess(np.stack(images))
        logits = f(x)
        seg = seg_loss_per_image(logits, torch.ones(16, 8, 8, dtype=torch.long)).numpy()
        conf = h.eval()(logits).numpy()
    target = np.array([miner_target(float(v), beta) for v in seg])
    assert seg.min() < 0.1 and seg.max() > 3.0  # the construction spans easy and hard frames
    assert np.abs(conf - target).mean() < 0.08
    rank = np.corrcoef(np.argsort(np.argsort(conf)), np.argsort(np.argsort(target)))[0, 1]
    assert rank > 0.9
    assert conf[np.argmax(seg)] < conf[np.argmin(seg)] - 0.5  # high loss -> low confidence


def test_train_miner_on_a_single_frame_with_the_real_resnet18_miner() -> None:
    # One frame at 32x32: the ResNet18's last BatchNorm sees 1x1 maps of one sample (refused in train mode).
    images, labels = _toy(1, seed=4)
    h = MinerNet(M, in_size=(32, 32))
    before = {k: v.clone() for k, v in h.state_dict().items()}
    cfg = _cfg(epochs=2, batch_size=2, input_size=(32, 32), lr=1e-3)
    losses = train_miner(_tiny_f(), h, images, labels, cfg, progress=False)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    after = h.state_dict()
    assert not torch.equal(before["resnet.fc.weight"], after["resnet.fc.weight"])  # h was trained
    bn = "resnet.layer4.1.bn2"
    assert torch.equal(before[f"{bn}.running_var"], after[f"{bn}.running_var"])  # no stats from one frame
    assert h.training and all(m.training for m in h.modules())  # train mode restored everywhere


def test_recalibrate_batchnorm_uses_the_data_statistics() -> None:
    net = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), nn.BatchNorm2d(2)).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    torch.manual_seed(0)
    batches = [torch.randn(4, 2, 3, 3) * torch.tensor([2.0, 0.5]).view(1, 2, 1, 1) + 5.0 for _ in range(3)]
    recalibrate_batchnorm(net, batches)
    bn = net[1]
    assert not net.training and bn.momentum == 0.1  # mode and momentum restored
    assert torch.allclose(
        bn.running_mean, torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0), atol=1e-5
    )
    assert torch.allclose(bn.running_var, torch.stack([b.var((0, 2, 3)) for b in batches]).mean(0), atol=1e-4)


def test_plot_report_writes_png(tmp_path: Path) -> None:
    report = {
        "loss_f": [1.0, 0.5, 0.3],
        "loss_h": [],
        "metric": "miou",
        "before": {"miou": 0.4},
        "after": {"miou": 0.5},
        "accepted": True,
        "n_train": 8,
        "n_holdout": 2,
    }
    out = tmp_path / "sub" / "report.png"
    out.parent.mkdir()
    plot_report(report, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000

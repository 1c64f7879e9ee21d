"""Hard-input miners: Eq. 22-24 on hand-computed arrays, the neural h, Eq. 14 and the thresholds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from laecips_core.algo.mining import (
    MessMiner,
    Miner,
    MinerNet,
    NeuralMiner,
    SmMiner,
    SppMiner,
    build_miner,
    hard_label,
    mess_confidence,
    miner_loss,
    miner_registry,
    miner_target,
    sm_confidence,
    spp_confidence,
)
from laecips_core.errors import ConfigError


def _tiny_probs() -> np.ndarray:
    """(3, 2, 2): pixels [.95 .03 .02], [.5 .4 .1], [.2 .7 .1], [.25 .25 .5]."""
    pixels = [[0.95, 0.03, 0.02], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1], [0.25, 0.25, 0.5]]
    return np.array(pixels, dtype=np.float64).T.reshape(3, 2, 2)


def test_confidence_miners_match_hand_computed_values() -> None:
    probs = _tiny_probs()
    assert mess_confidence(probs, thre_pix=0.9) == pytest.approx(0.25)
    assert mess_confidence(probs, thre_pix=0.5) == pytest.approx(1.0)  # >= is inclusive: 0.5 counts
    assert mess_confidence(probs, thre_pix=0.6) == pytest.approx(0.5)
    assert sm_confidence(probs) == pytest.approx((0.92 + 0.1 + 0.5 + 0.25) / 4)
    assert spp_confidence(probs) == pytest.approx((0.95 + 0.5 + 0.7 + 0.5) / 4)
    assert isinstance(spp_confidence(probs), float)


def test_confidence_miners_batched_and_torch() -> None:
    probs = _tiny_probs()
    uniform = np.full((3, 2, 2), 1 / 3)
    batch = np.stack([probs, uniform])  # (2, 3, 2, 2)
    for fn, expected in (
        (lambda p: mess_confidence(p, 0.9), [0.25, 0.0]),
        (sm_confidence, [(0.92 + 0.1 + 0.5 + 0.25) / 4, 0.0]),
        (spp_confidence, [(0.95 + 0.5 + 0.7 + 0.5) / 4, 1 / 3]),
    ):
        out = fn(batch)
        assert isinstance(out, np.ndarray) and out.shape == (2,)
        np.testing.assert_allclose(out, expected, atol=1e-12)
        np.testing.assert_allclose(fn(torch.from_numpy(batch).float()), expected, atol=1e-6)


def test_confidence_miner_classes_softmax_the_logits() -> None:
    logits = np.log(_tiny_probs()).astype(np.float32)  # softmax(log p) == p
    np.testing.assert_allclose(MessMiner(0.9).confidence(logits), [0.25], atol=1e-6)
    np.testing.assert_allclose(SmMiner().confidence(logits), [sm_confidence(_tiny_probs())], atol=1e-6)
    np.testing.assert_allclose(SppMiner().confidence(torch.from_numpy(logits)[None]), [0.6625], atol=1e-6)
    for miner in (MessMiner(), SmMiner(), SppMiner()):
        assert isinstance(miner, Miner)
        assert miner.confidence(np.zeros((2, 3, 4, 5), np.float32)).shape == (2,)


def test_bad_miner_inputs_raise() -> None:
    with pytest.raises(ConfigError, match="thre_pix"):
        mess_confidence(_tiny_probs(), thre_pix=1.5)
    with pytest.raises(ConfigError, match="M >= 2"):
        sm_confidence(np.ones((1, 2, 2)))
    with pytest.raises(ConfigError, match=r"\(M, H, W\) or \(B, M, H, W\)"):
        spp_confidence(np.ones((2, 2)))
    with pytest.raises(ConfigError, match="float scores"):
        spp_confidence(np.ones((3, 2, 2), dtype=np.int64))


def test_minernet_size_output_and_resizing() -> None:
    torch.manual_seed(0)
    net = MinerNet(19)
    assert sum(p.numel() for p in net.parameters()) < 20_000_000
    assert net.resnet.conv1.in_channels == 19
    net.eval()
    with torch.no_grad():
        for shape in ((3, 19, 120, 160), (2, 19, 40, 50), (1, 19, 64, 64)):  # shrink, grow, as is
            out = net(torch.randn(shape) * 5)
            assert out.shape == (shape[0],)
            assert bool(((out >= 0) & (out <= 1)).all())
    with pytest.raises(ConfigError, match=r"\(B, 19, H, W\)"):
        net(torch.randn(1, 18, 64, 64))
    with pytest.raises(ConfigError, match="in_size"):
        MinerNet(19, in_size=(16, 16))


def test_minernet_costs_under_15_percent_of_f() -> None:
    from laecips_core.algo.models import build_edge_model
    from torch.utils.flop_counter import FlopCounterMode

    f = build_edge_model("lraspp_mobilenetv3", 19, pretrained_backbone=False).eval()
    h = MinerNet(19).eval()
    with torch.no_grad():
        with FlopCounterMode(display=False) as f_count:
            logits = f(torch.zeros(1, 3, 480, 640))
        with FlopCounterMode(display=False) as h_count:
            h(logits)
    assert 0 < h_count.get_total_flops() <= 0.15 * f_count.get_total_flops()


def test_neural_miner_runs_eval_mode_and_restores_training() -> None:
    torch.manual_seed(1)
    net = MinerNet(4, in_size=(32, 32))
    net.train()
    logits = np.random.default_rng(0).standard_normal((2, 4, 40, 48)).astype(np.float32)
    out = NeuralMiner(net).confidence(logits)
    assert out.shape == (2,) and out.dtype == np.float64
    assert net.training
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(out, net(torch.from_numpy(logits)).numpy(), atol=1e-6)
    assert NeuralMiner(net).confidence(logits[0]).shape == (1,)  # unbatched (M, H, W)


def test_registry_and_build_miner() -> None:
    assert set(miner_registry) == {"neural", "mess", "sm", "spp"}
    mess = build_miner("mess", 19, thre_pix=0.8)
    assert isinstance(mess, MessMiner) and mess.thre_pix == 0.8
    neural = build_miner("neural", 5, in_size=(32, 32))
    assert isinstance(neural, NeuralMiner) and isinstance(neural.net, MinerNet)
    assert neural.net.in_size == (32, 32)
    assert isinstance(build_miner("spp", 19), SppMiner) and isinstance(build_miner("sm", 19), SmMiner)
    with pytest.raises(ConfigError, match="unknown miner"):
        build_miner("entropy", 19)
    with pytest.raises(ConfigError, match="does not take options"):
        build_miner("sm", 19, thre_pix=0.5)


def test_hard_label_uses_margin_inclusively() -> None:
    assert hard_label(0.6, 0.5)  # 0.6 - 0.5 == 0.0999... in floats: still HARD
    assert not hard_label(0.59, 0.5)
    assert hard_label(0.9, 0.5, margin=0.4)
    assert not hard_label(0.5, 0.6)
    with pytest.raises(ConfigError, match="NaN"):
        hard_label(float("nan"), 0.5)


def test_miner_target_is_min_one_beta_over_loss() -> None:
    assert miner_target(2.0, 0.5) == pytest.approx(0.25)
    assert miner_target(0.1, 0.5) == 1.0
    assert miner_target(0.0, 0.5) == 1.0
    np.testing.assert_allclose(miner_target(np.array([4.0, 0.25]), 1.0), [0.25, 1.0])
    torch.testing.assert_close(miner_target(torch.tensor([1.0, 0.0]), 0.5), torch.tensor([0.5, 1.0]))
    with pytest.raises(ConfigError, match="beta"):
        miner_target(1.0, 0.0)


def test_miner_loss_matches_eq14_and_its_minimiser_is_miner_target() -> None:
    h = torch.tensor([0.5, 0.25])
    seg = torch.tensor([1.0, 2.0])
    expected = ((0.5 * 1.0 + 0.5 * math.log(2)) + (0.25 * 2.0 + 0.5 * math.log(4))) / 2
    assert float(miner_loss(h, seg, 0.5)) == pytest.approx(expected, rel=1e-6)
    assert math.isfinite(float(miner_loss(torch.zeros(1), torch.ones(1), 0.5)))  # log clamp
    # gradient descent on h (through a sigmoid) converges to min(1, beta / l); l gets no gradient
    seg = torch.tensor([0.25, 1.0, 4.0], requires_grad=True)
    raw = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.1)
    for _ in range(1500):
        opt.zero_grad()
        miner_loss(torch.sigmoid(raw), seg, 0.5).backward()
        opt.step()
    assert seg.grad is None
    np.testing.assert_allclose(torch.sigmoid(raw).detach().numpy(), [0.99, 0.5, 0.125], atol=0.01)
    with pytest.raises(ConfigError, match="same shape"):
        miner_loss(torch.ones(2), torch.ones(3), 0.5)

"""Per-frame BatchNorm statistics for f at inference: the robot's f follows the stream it sees.

f's BatchNorm layers normalise with statistics stored at training time. When the camera's domain
shifts (light, product, scene) those statistics are stale, and after a cloud update they are the
statistics of the *previous* task's replay buffer, which can be far worse than f0's own (measured in
docs/evaluation.md: task 3 after task-2 statistics, frame mIoU 0.35 -> 0.11).

Covariate-shift adaptation with a prior (Schneider et al., NeurIPS 2020, "Improving robustness against
common corruptions by covariate shift adaptation") fixes this per frame, without labels, state or lag:
each BatchNorm layer normalises frame x with

    mu    = (N * mu_stored    + mu_x)    / (N + 1)
    sigma2 = (N * sigma2_stored + sigma2_x) / (N + 1)

where mu_x, sigma2_x are the layer input's per-channel mean and variance over x's pixels and N is the
prior strength (how many frames the stored statistics weigh against the current one). N = 0 turns it
off (stored statistics only, the paper's f). The default N = 16 is the prior strength Schneider et al.
report working for single-sample adaptation; it was not tuned on this project's stream.

Each frame is normalised on its own (a batch of B frames gives the same results as B single frames),
so the edge, the cloud and the eval compute the same f(x) for the same x.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR, check_prior


class StreamBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose eval-mode forward blends the stored and the frame's own statistics.

    In training mode it is exactly ``nn.BatchNorm2d``. State-dict keys are unchanged, so weights load
    into it as into the plain layer.
    """

    prior: float = DEFAULT_STREAM_NORM_PRIOR

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.running_mean is None or self.running_var is None or x.ndim != 4:
            return super().forward(x)
        keep = self.prior / (self.prior + 1.0)
        # Two passes (mean, then the mean of squared deviations): as exact as torch.var and 20-60x
        # faster on CPU at camera sizes (torch.var's Welford reduction over H, W is slow; see
        # docs/performance.md).
        own_mean = x.mean(dim=(2, 3))
        centred = x - own_mean[:, :, None, None]
        own_var = (centred * centred).mean(dim=(2, 3))
        mean = keep * self.running_mean + (1.0 - keep) * own_mean  # (B, C)
        var = keep * self.running_var + (1.0 - keep) * own_var
        weight: torch.Tensor | None = self.weight
        bias: torch.Tensor | None = self.bias
        if torch.is_grad_enabled():  # batch_norm's kernel takes no gradient through mean and var
            y = (x - mean[:, :, None, None]) * torch.rsqrt(var + self.eps)[:, :, None, None]
            if weight is not None:
                y = y * weight[None, :, None, None]
            return y if bias is None else y + bias[None, :, None, None]
        batch, channels = x.shape[0], x.shape[1]
        if batch != 1:  # frame b's channels become channels of one "frame": one kernel call for all
            weight = None if weight is None else weight.repeat(batch)
            bias = None if bias is None else bias.repeat(batch)
        # Eval-mode batch_norm with the blended statistics: one pass (x - mean) * w / sqrt(var + eps) + b.
        y = F.batch_norm(
            x.reshape(1, batch * channels, x.shape[2], x.shape[3]),
            mean.reshape(-1),
            var.reshape(-1),
            weight,
            bias,
            False,
            0.0,
            self.eps,
        )
        return y.reshape(x.shape)


def with_stream_norm(f: nn.Module, prior: float) -> nn.Module:
    """A copy of f whose BatchNorm2d layers use per-frame statistics with prior strength N = prior.

    f itself is not changed (the trainer keeps working on plain BatchNorm). With prior 0, f is
    returned as it is.

    Args:
        f: edge model f.
        prior: N >= 0.

    Returns:
        f (prior 0) or a deep copy with every plain ``nn.BatchNorm2d`` turned into StreamBatchNorm2d.

    Raises:
        ConfigError: bad prior.
    """
    prior = check_prior(prior)
    if prior == 0.0:
        return f
    g = copy.deepcopy(f)
    for module in g.modules():
        if type(module) is nn.BatchNorm2d or type(module) is StreamBatchNorm2d:
            module.__class__ = StreamBatchNorm2d
            cast(StreamBatchNorm2d, module).prior = prior
    return g


def count_stream_layers(f: nn.Module) -> int:
    """How many layers of f normalise per frame (0 for a plain f)."""
    return sum(isinstance(m, StreamBatchNorm2d) for m in f.modules())

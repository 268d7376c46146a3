"""The categorical loss of the post's addendum: samples as 256 μ-law classes, as WaveNet models them.

The generator's last layer gives 256 logits per sample; the target is μ-law companded (μ = 255)
and quantised to 256 classes; the loss is the cross-entropy.

References
----------
ITU-T G.711 (1988), μ-law companding, μ = 255; van den Oord et al. (2016), "WaveNet: A Generative
Model for Raw Audio", section 2.2 (the 256-class softmax over μ-law companded samples).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MU = 255
CLASSES = MU + 1


def mu_law_compress(x: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """``sign(x) ln(1 + mu |x|) / ln(1 + mu)``, from [-1, 1] to [-1, 1]."""
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_law_expand(y: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Inverse of :func:`mu_law_compress`: ``sign(y) ((1 + mu)^|y| - 1) / mu``."""
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


def quantise(x: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Class indices 0..mu of the companded signal (clipped to [-1, 1] first), rounded to nearest."""
    companded = mu_law_compress(x.clamp(-1.0, 1.0), mu)
    return torch.round((companded + 1.0) / 2.0 * mu).long()


def class_values(mu: int = MU, device=None, dtype=torch.float32) -> torch.Tensor:
    """The companded amplitude each class stands for: ``2 c / mu - 1``."""
    return torch.arange(mu + 1, device=device, dtype=dtype) * (2.0 / mu) - 1.0


class MuLawLoss(nn.Module):
    """Cross-entropy between 256 logits per sample and the μ-law class of the target sample.

    Shape:
        input: logits ``(batch, 256, time)``; target: waveform ``(batch, 1, time)`` or ``(batch, time)``.

    Decoding (:meth:`decode`): ``"expected"`` (the default) takes the expected companded amplitude
    under the softmax, ``sum_c p_c (2 c / 255 - 1)``, then μ-law expands it, a smooth estimate that
    hears the model's uncertainty as a quieter sample; ``"argmax"`` expands the most likely class.
    """

    output_channels = CLASSES

    def __init__(self, decoding: str = "expected"):
        super().__init__()
        if decoding not in ("expected", "argmax"):
            raise ValueError(f"unknown decoding {decoding!r}; choose expected or argmax")
        self.decoding = decoding

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        classes = quantise(target.reshape(target.shape[0], -1))
        return F.cross_entropy(logits, classes)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(batch, time)`` from logits ``(batch, 256, time)``."""
        values = class_values(device=logits.device, dtype=logits.dtype)
        if self.decoding == "argmax":
            companded = values[logits.argmax(dim=1)]
        else:
            companded = torch.einsum("bct,c->bt", logits.softmax(dim=1), values)
        return mu_law_expand(companded)

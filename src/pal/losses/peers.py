"""The peer losses the harness trains beside the library's: what a researcher would otherwise
use (auraloss's multi-resolution STFT, its mel variant, DAC's mel loss), the blend of the post's
loss with one of them, and the addendum's mu-law classes. Each is a factory
``factory(sample_rate) -> nn.Module`` under its registered name; :mod:`pal.losses.registry` says
what the application needs to know of each.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

PEER_LOSSES: dict[str, Callable[..., nn.Module]] = {}


def _peer(name: str):
    def add(factory):
        PEER_LOSSES[name] = factory
        return factory

    return add


@_peer("mrstft")
def _mrstft(sample_rate: float) -> nn.Module:
    """auraloss's ``MultiResolutionSTFTLoss`` with its defaults, as its users call it.

    Spectral convergence plus log-magnitude L1 at FFT sizes 1024, 2048, 512 (hops 120, 240, 50;
    windows 600, 1200, 240), averaged (Steinmetz & Reiss, 2020, "auraloss").
    """
    from auraloss.freq import MultiResolutionSTFTLoss

    return MultiResolutionSTFTLoss()


@_peer("mel-mrstft")
def _mel_mrstft(sample_rate: float) -> nn.Module:
    """auraloss's mel-scaled variant (``scale="mel", n_bins=128``) without librosa.

    auraloss builds its mel filters with librosa; we give its own STFT losses the same Slaney
    filters (:func:`perceptual_audio_loss.scales.mel_filterbank`) and run them unchanged.
    """
    from auraloss.freq import MultiResolutionSTFTLoss

    from perceptual_audio_loss.scales import mel_filterbank

    loss = MultiResolutionSTFTLoss()
    for resolution in loss.stft_losses:
        resolution.scale = "mel"
        resolution.fb = torch.from_numpy(mel_filterbank(sample_rate, resolution.fft_size, 128)).float()
    return loss


@_peer("dac-mel")
def _dac_mel(sample_rate: float) -> nn.Module:
    """The Descript Audio Codec's multi-scale mel loss with its published configuration: windows
    of 32 to 2048 samples, 5 to 320 mel bands, log10 L1 summed over the seven scales
    (Kumar et al., 2023; :mod:`pal.losses.mel`). The longest window fits the 8192-sample clip."""
    from .mel import MultiScaleMelLoss

    return MultiScaleMelLoss(sample_rate)


@_peer("perceptual+mrstft")
def _perceptual_plus_mrstft(sample_rate: float) -> nn.Module:
    """The post's loss plus auraloss's MR-STFT (as :func:`_mrstft` builds it), weights 1 and 1,
    unnormalised: the blend a user of both would write first.

    A :class:`~perceptual_audio_loss.losses.WeightedSum`: it prepares the post's loss's targets
    once and evaluates the MR-STFT part item by item (auraloss has no per-item reduction), so an
    item's value is its own, whatever else is in the batch.
    """
    from perceptual_audio_loss import PerceptualLoss
    from perceptual_audio_loss.losses import WeightedSum

    return WeightedSum([(PerceptualLoss(sample_rate), 1.0), (_mrstft(sample_rate), 1.0)])


@_peer("mulaw")
def _mulaw(sample_rate: float) -> nn.Module:
    """The addendum's categorical loss: 256 μ-law classes per sample, cross-entropy."""
    from .mulaw import MuLawLoss

    return MuLawLoss()

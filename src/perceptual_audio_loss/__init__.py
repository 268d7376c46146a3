"""Differentiable perceptual audio losses for PyTorch.

Depends on torch, numpy and scipy only. Every loss takes ``(batch, time)`` or
``(batch, channels, time)`` in any float dtype and follows the contract written down in
:mod:`perceptual_audio_loss.contract`. The experiment application that shows what the losses buy
is the separate ``pal`` package (``pip install 'perceptual-audio-loss[app]'``).
"""

__version__ = "0.2.0"

from .auditory import AuditorySpectrogramLoss, auditory_spectrogram_loss
from .contract import PreparedTargetLoss
from .losses import LOSSES, TargetLoss, WaveformDistance, WeightedSum, build_loss, register_loss
from .masking import MaskedLoss, masked_loss
from .perceptual import PerceptualLoss, perceptual_loss

__all__ = ["LOSSES", "AuditorySpectrogramLoss", "MaskedLoss", "PerceptualLoss", "PreparedTargetLoss", "TargetLoss",
           "WaveformDistance", "WeightedSum", "auditory_spectrogram_loss", "build_loss", "masked_loss", "perceptual_loss",
           "register_loss", "__version__"]

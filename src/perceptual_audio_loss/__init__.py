"""Differentiable perceptual audio losses for PyTorch, and the experiment that shows what they buy.

``import perceptual_audio_loss`` loads the loss library only (torch, numpy, scipy); the experiment,
page and command line load their own dependencies when used.
"""

__version__ = "0.1.0"

from .generator import Generator
from .losses import LOSSES, build_loss, register_loss
from .masking import MaskedLoss, masked_loss
from .perceptual import PerceptualLoss, perceptual_loss

__all__ = ["Generator", "LOSSES", "MaskedLoss", "PerceptualLoss", "build_loss", "masked_loss", "perceptual_loss",
           "register_loss", "__version__"]

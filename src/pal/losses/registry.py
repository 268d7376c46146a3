"""Every loss the harness knows by name, each with what the application needs to know of it.

The library registers its losses (:data:`perceptual_audio_loss.LOSSES`), :mod:`pal.losses.peers`
the peers'; here each registered name gets one :class:`RegisteredLoss`: where its factory lives,
the estimate of its memory that bounds its options before it is built (:mod:`pal.losses.budget`),
the page sections it needs beyond the grid of checkpoints, and whether the generator's output
must be decoded into audio (the mu-law loss's classes). A user's loss (``file.py:NAME``) has no
record: it needs no section, its size is its own, and it decodes when it is a :class:`DecodingLoss`.

| name | where | memory estimate | page sections | decodes |
|---|---|---|---|---|
| mse, l1 | library | the signal's copies | | |
| perceptual, perceptual-mse | library | the feature map (bands x frames) | | |
| masked | library | spectra and spreading, per resolution | the masking threshold | |
| masked+perceptual | library | both parts | the masking threshold | |
| auditory | library | spectra and ERB bands, per resolution | | |
| mrstft, mel-mrstft, dac-mel | peers | spectra, per resolution | | |
| perceptual+mrstft | peers | both parts | | |
| mulaw | peers | 256 logits per sample | | yes |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from perceptual_audio_loss import LOSSES as LIBRARY_LOSSES, PerceptualLoss

from . import budget
from .budget import Memory
from .peers import PEER_LOSSES

MASK_SECTION = "mask"  # the target's masking threshold beside its spectrogram


@runtime_checkable
class DecodingLoss(Protocol):
    """A loss trained on something other than audio: the generator outputs ``output_channels``
    values per sample (e.g. 256 mu-law logits) and ``decode`` turns ``(batch, channels, T)`` into
    audio ``(batch, T)``."""

    output_channels: int

    def decode(self, output: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class RegisteredLoss:
    """What the application knows of one registered loss."""

    name: str
    memory: Memory
    sections: tuple[str, ...] = ()  # page sections beyond the checkpoints' grid
    decodes: bool = False  # its module is a DecodingLoss

    @property
    def peer(self) -> bool:
        return self.name in PEER_LOSSES

    @property
    def factory(self) -> Callable[..., nn.Module]:
        """``factory(sample_rate, **options)``, read when called (a test may stand in for one)."""
        return PEER_LOSSES[self.name] if self.peer else LIBRARY_LOSSES[self.name]


_FEATURE_MAP = Memory(budget.perceptual_bytes, ("n_bands", "taps", "stride"))
_WAVEFORM = Memory(budget.waveform_bytes)
REGISTERED = {loss.name: loss for loss in (
    RegisteredLoss("mse", _WAVEFORM),
    RegisteredLoss("l1", _WAVEFORM),
    RegisteredLoss("perceptual", _FEATURE_MAP),
    RegisteredLoss("perceptual-mse", _FEATURE_MAP),
    RegisteredLoss("masked", Memory(budget.masked_bytes, ("band_width_bark", "windows_s", "backward_s")),
                   sections=(MASK_SECTION,)),
    RegisteredLoss("masked+perceptual", Memory(budget.sum_of(budget.perceptual_bytes, budget.masked_bytes)),
                   sections=(MASK_SECTION,)),
    RegisteredLoss("auditory", Memory(budget.auditory_bytes, ("longest_window_s", "resolutions", "bands_per_erb"))),
    RegisteredLoss("mrstft", Memory(budget.mrstft_bytes)),
    RegisteredLoss("mel-mrstft", Memory(budget.mel_mrstft_bytes)),
    RegisteredLoss("dac-mel", Memory(budget.dac_mel_bytes)),
    RegisteredLoss("perceptual+mrstft", Memory(budget.sum_of(budget.perceptual_bytes, budget.mrstft_bytes))),
    RegisteredLoss("mulaw", Memory(budget.mulaw_bytes), decodes=True),
)}


def registered_names() -> list[str]:
    """The library's names, then the peers', each in alphabetical order."""
    return sorted(LIBRARY_LOSSES) + sorted(PEER_LOSSES)


def registered(label: str, sources: dict) -> RegisteredLoss | None:
    """The record of the loss a run's ``label`` names (``masked:band_width_bark=0.5`` is a
    ``masked``), from its resolved spec in ``sources`` or, in a run recorded before specs were, from
    the label's first part; ``None`` for a user's loss."""
    record = sources.get(label)
    if record is not None:
        return REGISTERED.get(record["target"]) if record["kind"] == "registered" else None
    return REGISTERED.get(label.split(":")[0])


def needs_section(section: str, labels: list[str], sources: dict) -> bool:
    """Whether any of a run's losses needs the page section ``section``."""
    return any(loss is not None and section in loss.sections for loss in (registered(l, sources) for l in labels))


def filtering_method(loss: nn.Module) -> str | None:
    """The filtering a ``PerceptualLoss`` chose (``"fft"`` or ``"direct"``), kept in the run's
    record; ``None`` for any other loss."""
    return loss.method if isinstance(loss, PerceptualLoss) else None

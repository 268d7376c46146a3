"""The judges: measures made by a model of listeners, each behind an optional extra.

A :class:`Judge` says what it needs installed and how to score a pair of clips; its measure is
declared in :mod:`pal.measures.registry` like every other. A judge asked for but not installed
is one note, and the run goes on without it.

CDPAM, an independent judge: a learned audio distance fitted to human judgements of similarity.
No loss of the experiment optimises it, so it scores the generations from outside the losses'
own yardsticks. Optional: it needs the ``cdpam`` extra (``pip install
'perceptual-audio-loss[cdpam]'``: the ``cdpam`` package, whose wheel holds the trained weights,
and the ``librosa`` and ``resampy`` it imports). Nothing is downloaded when it runs.

References
----------
P. Manocha, Z. Jin, R. Zhang and A. Finkelstein (2021), "CDPAM: Contrastive learning for
perceptual audio similarity", ICASSP 2021. Code and weights: PyPI ``cdpam`` 0.0.6 (MIT licence),
https://github.com/pranaymanocha/PerceptualAudio.
"""

from __future__ import annotations

import functools
import importlib.resources
import pickle
import types
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

CDPAM_RATE = 22050  # the rate CDPAM was trained at (cdpam.load_audio reads every file at 22050 Hz)
INT16_SCALE = 32768.0  # cdpam.load_audio: np.round(samples * 32768), int16-range floats
WEIGHTS = "CDPAM_trained/scratchJNDdefault_best_model.pth"  # inside the installed cdpam package


@dataclass(frozen=True)
class Judge:
    """An optional judge: its name, the extra that installs it, whether it is installed here,
    and its score of a generation against its original (1-D arrays at a sample rate)."""

    name: str
    extra: str
    installed: Callable[[], bool]
    score: Callable[[np.ndarray, np.ndarray, float], float]

    @property
    def not_installed(self) -> str:
        """The one note a run asked for this judge prints when it is not installed."""
        return (f"pal: note: {self.name} is not installed; the run goes on without it "
                f"(pip install 'perceptual-audio-loss[{self.extra}]' adds it)")


def cdpam_installed() -> bool:
    """Whether ``cdpam`` (and the librosa and resampy it imports) can be imported here."""
    try:
        import cdpam  # noqa: F401
    except ImportError:
        return False
    return True


class _CheckpointUnpickler(pickle.Unpickler):
    """The checkpoint's pickle, refusing any class but the two it holds (tensors, ordered dicts).

    torch's own safe loader (``weights_only=True``, the default since torch 2.6) cannot read this
    file: it is a legacy (Python 2, protocol 2) torch checkpoint whose optimiser state is keyed by
    ``INT`` opcodes, which that loader does not know. torch's legacy loader maps the storages
    (``torch FloatStorage``) itself before asking this class.
    """

    ALLOWED = {("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"CDPAM's checkpoint names {module}.{name}, which it should not hold")
        return super().find_class(module, name)


# torch.load's pickle_module: ``load`` reads the legacy header, ``Unpickler`` the checkpoint.
_checkpoint_pickle = types.ModuleType("pal_cdpam_checkpoint_pickle")
_checkpoint_pickle.Unpickler = _CheckpointUnpickler
_checkpoint_pickle.load = lambda file, **options: _CheckpointUnpickler(file, **options).load()


def load_cdpam_state() -> dict:
    """The trained weights (``state_dict``) from the file inside the installed ``cdpam`` package."""
    with importlib.resources.as_file(importlib.resources.files("cdpam") / WEIGHTS) as path:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_checkpoint_pickle)
    return checkpoint["state"]


@functools.lru_cache(maxsize=1)
def cdpam_model():
    """``cdpam.CDPAM`` on the CPU in eval mode, built once per process.

    Its own constructor calls ``torch.load`` with torch's default, which refuses this file; the
    network is built here with the constructor's hyperparameters (cdpam 0.0.6, ``cdpam/cdpam.py``)
    and the weights read by :func:`load_cdpam_state`. Its ``forward`` is cdpam's own.
    """
    import cdpam
    from cdpam.models import FINnet

    device = torch.device("cpu")
    network = FINnet(dev=device, encoder_layers=16, encoder_filters=64, ndim=[16, 6], classif_dp=0.05,
                     classif_BN=0, classif_act="no", input_size=512)
    network.load_state_dict(load_cdpam_state())
    network.eval()
    judge = cdpam.CDPAM.__new__(cdpam.CDPAM)
    judge.device, judge.model = device, network
    return judge


def cdpam_input(samples: np.ndarray, sample_rate: float) -> np.ndarray:
    """A clip as CDPAM reads one (``cdpam.load_audio``): at 22050 Hz, int16-range floats, ``(1, time)``."""
    import soxr

    resampled = np.asarray(samples, float)
    if sample_rate != CDPAM_RATE:
        resampled = soxr.resample(resampled, sample_rate, CDPAM_RATE)
    return np.round(resampled * INT16_SCALE).astype(np.float32)[None, :]


def cdpam_distance(original: np.ndarray, generated: np.ndarray, sample_rate: float) -> float:
    """CDPAM's distance between two 1-D clips at ``sample_rate``: 0 for identical clips, lower is
    more similar.

    Both are resampled to 22050 Hz (soxr, as the rest of the application) and scaled to the
    int16 range, as ``cdpam.load_audio`` prepares a file; the model is cdpam 0.0.6's, on the CPU,
    built once per process (:func:`cdpam_model`).
    """
    judge = cdpam_model()
    with torch.no_grad():
        distance = judge.forward(cdpam_input(original, sample_rate), cdpam_input(generated, sample_rate))
    return float(distance.reshape(()))


CDPAM_JUDGE = Judge("CDPAM", "cdpam", cdpam_installed, cdpam_distance)

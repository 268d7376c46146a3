"""The judges: measures made by a model of listeners, each behind an optional extra.

A :class:`Judge` says what it needs installed and how to score a pair of clips; its measure is
declared in :mod:`pal.measures.registry` like every other. A judge asked for but not installed
is one note, and the run goes on without it.

CDPAM, an independent judge: a learned audio distance fitted to human judgements of similarity.
No loss of the experiment optimises it, so it scores the generations from outside the losses'
own yardsticks. Optional: it needs the ``cdpam`` extra (``pip install
'perceptual-audio-loss[cdpam]'``: the ``cdpam`` package, whose wheel holds the trained weights,
and the ``librosa`` and ``resampy`` it imports). Nothing is downloaded when it runs.

ViSQOL and DNSMOS, the codec experiment's judges (``pal codec``), scoring whole test files.
Optional: both need the ``judges`` extra (``pip install 'perceptual-audio-loss[judges]'``), and
nothing is downloaded when they run: each package's wheel holds its models.

- ViSQOL v3 (PyPI ``visqol-python`` 3.8.0, a Python port of Google's C++ ViSQOL 3.3.3 that
  reproduces its conformance values) compares a generation with its reference and gives a MOS-LQO,
  1 to 5, higher better. Audio mode (music and general audio) runs at 48 kHz and maps similarity
  to quality with its SVR model; speech mode runs at 16 kHz with voice-activity patches and the
  deep-lattice mapping that C++ ViSQOL uses by default (the extra installs its runtime,
  ``ai-edge-litert``; without it the package would fall back to its older polynomial mapping,
  which its author says over-predicts degraded speech by 1 to 2 points). Identical clips score
  4.7321 in audio mode (the conformance case ``castanets_identity``) and about 4.4 to 4.6 in speech
  mode, not 5: ViSQOL's authors say that is expected, as listeners rarely give the clean reference
  itself a 5 (google/visqol issue 89). numba (the extra installs it) makes it about 10x faster; it
  compiles ViSQOL's kernels at first use and keeps them, as numba does, in the installed package's
  ``__pycache__``.
- DNSMOS P.835 (PyPI ``speechmos`` 0.0.1.1, Microsoft's ONNX models, on ``onnxruntime``) is
  non-intrusive: it hears only the generation, at 16 kHz, and predicts the overall quality (OVRL),
  the speech signal's (SIG) and the background's (BAK) on ITU-T P.835's 1 to 5 scales, higher
  better, fitted to listeners' ratings of noisy and enhanced speech. Its scores depend on the
  clip's level (the built-in speech at its -18 dBFS RMS: OVRL 1.9; the same 12 dB quieter: 2.6):
  it is scored as given, as its authors' code scores a file, so compare generations of one clip.

References
----------
P. Manocha, Z. Jin, R. Zhang and A. Finkelstein (2021), "CDPAM: Contrastive learning for
perceptual audio similarity", ICASSP 2021. Code and weights: PyPI ``cdpam`` 0.0.6 (MIT licence),
https://github.com/pranaymanocha/PerceptualAudio.

A. Hines, J. Skoglund, A. C. Kokaram and N. Harte (2015), "ViSQOL: an objective speech quality
model", EURASIP Journal on Audio, Speech, and Music Processing 2015:13.

M. Chinen, F. S. C. Lim, J. Skoglund, N. Gureev, F. O'Gorman and A. Hines (2020), "ViSQOL v3: an
open source production ready objective speech and audio metric", QoMEX 2020. Code: C++
https://github.com/google/visqol (Apache-2.0); the port used here: PyPI ``visqol-python`` 3.8.0
(Apache-2.0), https://github.com/talker93/visqol-python.

C. K. A. Reddy, V. Gopal and R. Cutler (2021), "DNSMOS: a non-intrusive perceptual objective speech
quality metric to evaluate noise suppressors", ICASSP 2021; and (2022), "DNSMOS P.835: a
non-intrusive perceptual objective speech quality metric to evaluate noise suppressors", ICASSP
2022. Models: https://github.com/microsoft/DNS-Challenge (``DNSMOS``), packaged as PyPI
``speechmos`` 0.0.1.1 (MIT licence).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import importlib
import importlib.resources
import math
import pickle
import types
from dataclasses import dataclass
from typing import Callable, NamedTuple

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


VISQOL_RATES = {"audio": 48000, "speech": 16000}  # the rate each of ViSQOL's modes is built for
# The shortest reference each mode scores, in samples at its rate (visqol-python 3.8.0, whatever the
# content): audio mode needs 45 frames of 80 ms hopped by 20 ms (0.96 s), speech mode one
# 20-frame patch after its first half patch (0.64 s); shorter, ViSQOL raises its own errors.
VISQOL_MIN_SAMPLES = {"audio": 46080, "speech": 10240}
DNSMOS_RATE = 16000  # speechmos.dnsmos.SR: the rate DNSMOS's models were trained at
DNSMOS_MODELS = "dnsmos_models"  # inside the installed speechmos package
DNSMOS_P835 = "sig_bak_ovr.onnx"  # SIG, BAK and OVRL (speechmos's model_type "dnsmos")
DNSMOS_P808 = "model_v8.onnx"  # the P.808 overall MOS, from a mel spectrogram


def _importable(*modules: str) -> bool:
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        return False
    return True


def visqol_installed(mode: str = "audio") -> bool:
    """Whether ViSQOL can score in ``mode`` here: ``visqol`` (visqol-python) with libsvm and soxr,
    and for speech mode the TFLite runtime of its lattice mapping (``ai_edge_litert``)."""
    modules = ("visqol", "libsvm.svmutil", "soxr") + (("ai_edge_litert.interpreter",) if mode == "speech" else ())
    return _importable(*modules)


def _visqol_mode(mode: str) -> str:
    if mode not in VISQOL_RATES:
        raise ValueError(f"mode must be one of {sorted(VISQOL_RATES)}, not {mode!r}")
    return mode


@functools.lru_cache(maxsize=None)
def visqol_api(mode: str = "audio"):
    """``visqol.VisqolApi`` created for ``mode``, once per process and mode.

    Audio mode with the SVR model in the package; speech mode with the lattice model in the package,
    asked for by name (``use_lattice_model=True``), so a missing runtime is an ``ImportError`` here,
    never the package's silent fallback to its polynomial mapping. Building the lattice interpreter
    prints one line of TFLite's own on the process's stderr (``INFO: Created TensorFlow Lite XNNPACK
    delegate for CPU.``), from native code: that file descriptor is silenced while it is built.
    """
    from visqol import VisqolApi

    api = VisqolApi()
    if _visqol_mode(mode) == "speech":
        with _native_stderr_silenced():
            api.create(mode="speech", use_lattice_model=True)
    else:
        api.create(mode="audio")
    return api


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 pointed at ``/dev/null`` while inside (native libraries' own prints)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def visqol_input(samples: np.ndarray, sample_rate: float, mode: str, name: str) -> np.ndarray:
    """A clip as ViSQOL's ``mode`` reads one: 1-D float64 at its rate (soxr, as the rest of the
    application), refused in one line naming ``name`` when it is not 1-D, not finite, or shorter
    than :data:`VISQOL_MIN_SAMPLES` at that rate."""
    import soxr

    rate = VISQOL_RATES[_visqol_mode(mode)]
    clip = np.asarray(samples, float)
    if clip.ndim != 1:
        raise ValueError(f"{name} must be one channel (a 1-D array), not an array of shape {clip.shape}")
    if not np.all(np.isfinite(clip)):
        raise ValueError(f"{name} holds non-finite samples; ViSQOL cannot score it")
    if sample_rate != rate and clip.size:
        clip = soxr.resample(clip, sample_rate, rate)
    shortest = VISQOL_MIN_SAMPLES[mode]
    if clip.size < shortest:
        raise ValueError(f"{name} is {clip.size / rate:.3f} s long; ViSQOL's {mode} mode needs at least "
                         f"{shortest / rate:.2f} s ({shortest} samples at {rate} Hz)")
    return clip


def visqol_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: float, mode: str = "audio") -> float:
    """ViSQOL's MOS-LQO of ``degraded`` against ``reference`` (1-D clips at ``sample_rate``), in
    memory: 1 to 5, higher better.

    Parameters
    ----------
    reference, degraded
        The original and its generation, one channel each, at ``sample_rate``; ViSQOL aligns them
        itself and scales the degraded to the reference's level (a gain alone costs nothing).
    sample_rate
        Their rate, in Hz. Both are resampled with soxr to the rate of ``mode``.
    mode
        ``"audio"`` (music and general audio, at 48000 Hz, the SVR mapping) or ``"speech"``
        (speech only, at 16000 Hz, voice-activity patches and the lattice mapping).

    Returns
    -------
    float
        The MOS-LQO: 4.7321 for identical clips in audio mode, about 4.4 to 4.6 in speech mode.
        NaN for a silent ``degraded`` (all zeros, as :class:`~pal.measures.registry.Pair` makes a
        non-finite generation), which ViSQOL cannot scale to the reference's level.

    Raises
    ------
    ValueError
        Naming the argument: either clip shorter than ViSQOL needs (0.96 s in audio mode, 0.64 s
        in speech mode), not 1-D or not finite, or a silent ``reference``, against which ViSQOL's
        score would mean nothing (it gives speech against silence its top score); or an unknown
        ``mode``.

    References
    ----------
    A. Hines et al. (2015), "ViSQOL: an objective speech quality model", EURASIP JASMP 2015:13;
    M. Chinen et al. (2020), "ViSQOL v3: an open source production ready objective speech and
    audio metric", QoMEX 2020. The code: PyPI ``visqol-python`` 3.8.0, a port of C++ ViSQOL 3.3.3.
    """
    ref = visqol_input(reference, sample_rate, mode, "reference")
    deg = visqol_input(degraded, sample_rate, mode, "degraded")
    if not np.any(ref):
        raise ValueError("reference is silent; ViSQOL scores a generation against its reference, and silence is none")
    if not np.any(deg):
        return math.nan
    return float(visqol_api(mode).measure_from_arrays(ref, deg, VISQOL_RATES[mode]).moslqo)


def visqol_speech_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: float) -> float:
    """:func:`visqol_score` in speech mode (for speech only)."""
    return visqol_score(reference, degraded, sample_rate, mode="speech")


def dnsmos_installed() -> bool:
    """Whether DNSMOS can score here: ``speechmos`` with what it imports (onnxruntime, librosa,
    requests), and soxr."""
    return _importable("speechmos.dnsmos", "soxr")


@functools.lru_cache(maxsize=1)
def dnsmos_model():
    """``speechmos.dnsmos.DNSMOS`` with the P.835 (``sig_bak_ovr``) and P.808 models in the installed
    package, its two ONNX sessions built once per process (not speechmos's module-level instance)."""
    from speechmos.dnsmos import DNSMOS

    models = importlib.resources.files("speechmos") / DNSMOS_MODELS
    with (importlib.resources.as_file(models / DNSMOS_P835) as p835,
          importlib.resources.as_file(models / DNSMOS_P808) as p808):
        return DNSMOS(str(p835), str(p808))


class DnsmosScores(NamedTuple):
    """DNSMOS's predictions for one clip, each a MOS from 1 to 5, higher better."""

    overall: float  # P.835 OVRL, the overall quality
    signal: float  # P.835 SIG, the speech signal's quality
    background: float  # P.835 BAK, the background's (how little noise is heard)
    p808: float  # DNSMOS P.808's overall MOS (the 2021 model; level-independent, from a normalised mel spectrogram)


def dnsmos_scores(samples: np.ndarray, sample_rate: float) -> DnsmosScores:
    """DNSMOS P.835's scores of one speech clip (1-D at ``sample_rate``), in memory.

    The clip is resampled with soxr to 16000 Hz (as its authors' code reads a file, through
    librosa's soxr) and limited to [-1, 1] (what a 16-bit file of it holds; speechmos refuses
    arrays outside that range). Then it is scored as speechmos's ``DNSMOS`` scores it: a clip
    shorter than 9.01 s is repeated until it is that long, then every 9.01 s window hopped by
    1 s is scored, and the windows' scores averaged. Silence is scored too (DNSMOS predicts a
    quality for any sound: for 10 s of zeros OVRL 1.8, SIG 2.5, BAK 3.5). Its scores depend on the
    level: scored as given, so compare generations of one clip.

    Raises
    ------
    ValueError
        Naming ``samples``: empty (speechmos would repeat it forever), not 1-D, or not finite.

    References
    ----------
    C. K. A. Reddy, V. Gopal and R. Cutler (2022), "DNSMOS P.835: a non-intrusive perceptual
    objective speech quality metric to evaluate noise suppressors", ICASSP 2022 (and the P.808
    model: ICASSP 2021). The models and code: PyPI ``speechmos`` 0.0.1.1.
    """
    import soxr

    clip = np.asarray(samples, float)
    if clip.ndim != 1:
        raise ValueError(f"samples must be one channel (a 1-D array), not an array of shape {clip.shape}")
    if clip.size == 0:
        raise ValueError("samples is empty; DNSMOS needs a clip to score")
    if not np.all(np.isfinite(clip)):
        raise ValueError("samples holds non-finite samples; DNSMOS cannot score it")
    if sample_rate != DNSMOS_RATE:
        clip = soxr.resample(clip, sample_rate, DNSMOS_RATE)
    scores = dnsmos_model()(np.clip(clip, -1.0, 1.0), DNSMOS_RATE, False)
    return DnsmosScores(float(scores["ovrl_mos"]), float(scores["sig_mos"]), float(scores["bak_mos"]),
                        float(scores["p808_mos"]))


def dnsmos_overall(original: np.ndarray, generated: np.ndarray, sample_rate: float) -> float:
    """DNSMOS P.835's overall MOS (OVRL) of ``generated``: non-intrusive, so ``original`` is not
    read (it is there so DNSMOS is a :class:`Judge` like the others)."""
    return dnsmos_scores(generated, sample_rate).overall


VISQOL_JUDGE = Judge("ViSQOL", "judges", visqol_installed, visqol_score)
VISQOL_SPEECH_JUDGE = Judge("ViSQOL (speech mode)", "judges", functools.partial(visqol_installed, "speech"),
                            visqol_speech_score)
DNSMOS_JUDGE = Judge("DNSMOS", "judges", dnsmos_installed, dnsmos_overall)

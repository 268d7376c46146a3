"""Every measure the application records, declared once: the page, the claims table, ``pal
compare``, the sweep summary and the run's records all read this registry.

A :class:`Measure` says what a value is (its key in the run's per-checkpoint records, its heading, its chart's
title, its unit, which way is better), when it is scored (every checkpoint, only on speech, only
when its judge is asked for, or once per run from another measure's series), what the 2018 post
claims of it, and the function that computes it. Adding a measure is one declaration here (and a
place in :data:`MEASURES`, which is the order of the records), plus its test.

| measure | the post's claim it tests |
|---|---|
| SNR, log-spectral distance overall and in three bands | overall fidelity; the high band: "crisper mid and high frequencies" |
| multi-resolution STFT distance | overall spectral fidelity, the peer losses' own yardstick |
| noise floor | "less noise" |
| STOI, PESQ (speech) | "quicker convergence on something intelligible" |
| iterations to the final log-spectral distance | "quicker convergence" |
| CDPAM (a judge, the ``cdpam`` extra) | none: fitted to human judgements, no loss optimises it |

The codec experiment's judges (``pal codec``, the ``judges`` extra), scored on whole test files and
not at ``pal run``'s checkpoints, are declared here too, in :data:`CODEC_MEASURES`: ViSQOL in audio
mode, ViSQOL in speech mode (speech only), DNSMOS (speech only, no reference). They test no claim
of the post.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterable

import numpy as np

from . import formulas
from .judges import CDPAM_JUDGE, DNSMOS_JUDGE, VISQOL_JUDGE, VISQOL_SPEECH_JUDGE, Judge

WITHIN_DB = 1.0  # "iterations to reach within 1 dB of the final log-spectral distance"


class Pair:
    """One original and one generation at a rate: what a measure's function reads. Values that
    several measures share (the log-spectral distance's four bands) are computed once."""

    def __init__(self, original: np.ndarray, generated: np.ndarray, sample_rate: float):
        self.original = np.asarray(original, float)
        # A silent or non-finite generation scores NaN where a measure is undefined, never raises.
        self.generated = np.nan_to_num(np.asarray(generated, float), nan=0.0, posinf=0.0, neginf=0.0)
        self.sample_rate = sample_rate

    @cached_property
    def log_spectral_distances(self) -> dict[str, float]:
        return formulas.log_spectral_distance_db(self.original, self.generated, self.sample_rate)


@dataclass(frozen=True)
class Measure:
    """One measure, everything the application knows of it.

    ``compute`` scores a :class:`Pair` at one checkpoint; a measure without one is read once per
    run from the series of ``derived_from`` (:func:`iterations_to_final`).
    """

    key: str  # its name in the run's metrics table
    name: str  # its heading in the claims table and in pal compare
    chart: str  # its chart's title on the run page
    unit: str  # "dB", "MOS", "iterations", or "" for a ratio or a score
    lower_is_better: bool
    compute: Callable[[Pair], float] | None = None
    speech: bool = False  # scored only on the clips marked as speech
    judge: Judge | None = None  # scored only when this optional judge is asked for
    claim: str = ""  # what the 2018 post says that this measure tests ("" for none)
    derived_from: Measure | None = None
    # The values beyond the finite numbers it may record, each for a reason its formula states
    # (a perfect copy's SNR, no quiet cell for the noise floor, PESQ finding no utterance); any
    # other non-finite value in a record is damage.
    may_record: tuple[float, ...] = ()

    def recordable(self, value: float) -> bool:
        """Whether ``value`` is one this measure can have recorded."""
        return math.isfinite(value) or any(value == v or (math.isnan(v) and math.isnan(value)) for v in self.may_record)

    @property
    def per_run(self) -> bool:
        """Whether the measure is one value per run (from every checkpoint), not one per checkpoint."""
        return self.derived_from is not None


SNR = Measure("snr_db", "SNR (dB)", "SNR (dB, higher better)", "dB", False,
              lambda pair: formulas.snr_db(pair.original, pair.generated), may_record=(math.inf,))


def _band(band: str) -> Callable[[Pair], float]:
    return lambda pair: pair.log_spectral_distances[band]


LSD_OVERALL = Measure("lsd_overall_db", "log-spectral distance (dB)", "log-spectral distance (dB)", "dB", True,
                      _band("overall"))
LSD_LOW = Measure("lsd_low_db", "low-band log-spectral distance (dB)", "LSD < 500 Hz (dB)", "dB", True, _band("low"))
LSD_MID = Measure("lsd_mid_db", "mid-band log-spectral distance (dB)", "LSD 500-2500 Hz (dB)", "dB", True,
                  _band("mid"))
LSD_HIGH = Measure("lsd_high_db", "high-band log-spectral distance (dB)", "LSD > 2500 Hz (dB)", "dB", True,
                   _band("high"), claim="crisper mid and high frequencies")
MRSTFT = Measure("mrstft", "multi-resolution STFT distance", "multi-resolution STFT distance", "", True,
                 lambda pair: formulas.multi_resolution_stft_distance(pair.original, pair.generated),
                 claim="overall spectral fidelity")
NOISE_FLOOR = Measure("noise_floor_db", "noise floor (dB)", "noise floor (dB)", "dB", True,
                      lambda pair: formulas.noise_floor_db(pair.original, pair.generated, pair.sample_rate),
                      claim="less noise", may_record=(math.nan, -math.inf))
STOI = Measure("stoi", "STOI (speech)", "STOI (higher better)", "", False,
               lambda pair: formulas.stoi(pair.original, pair.generated, pair.sample_rate), speech=True,
               claim="intelligible sooner (read at the first checkpoints)", may_record=(math.nan,))
PESQ = Measure("pesq_wb", "PESQ wideband (speech)", "PESQ wideband (higher better)", "MOS", False,
               lambda pair: formulas.pesq_wideband(pair.original, pair.generated, pair.sample_rate), speech=True,
               claim="intelligible sooner", may_record=(math.nan,))
CDPAM = Measure("cdpam", "CDPAM distance (a judge no loss optimises)", "CDPAM distance (lower better)", "", True,
                lambda pair: CDPAM_JUDGE.score(pair.original, pair.generated, pair.sample_rate), judge=CDPAM_JUDGE,
                claim="nothing (it had no such judge): which loss a model of listeners finds closer")
ITERATIONS_TO_FINAL = Measure(
    "iterations_to_final_lsd", f"iterations to within {WITHIN_DB:g} dB of the final log-spectral distance", "",
    "iterations", True, claim="quicker convergence; the drum kit plateaus by 250", derived_from=LSD_OVERALL)

# Every measure, in the order a checkpoint's values are recorded (and the page's charts drawn).
MEASURES = (SNR, LSD_OVERALL, LSD_LOW, LSD_MID, LSD_HIGH, MRSTFT, NOISE_FLOOR, STOI, PESQ, CDPAM, ITERATIONS_TO_FINAL)
# The post's claims, in the order the post makes them (the claims table's rows); a claim whose
# measure a run lacks (CDPAM, unless asked for) has no row.
CLAIMED = (LSD_HIGH, NOISE_FLOOR, STOI, MRSTFT, ITERATIONS_TO_FINAL, CDPAM)
# pal compare's tables: the claims', and PESQ, the intelligibility claim's second measure.
COMPARED = CLAIMED + (PESQ,)
BY_KEY = {measure.key: measure for measure in MEASURES}
JUDGES = tuple(dict.fromkeys(measure.judge for measure in MEASURES if measure.judge is not None))

# The codec experiment's judges, scored once per whole test file (a MOS from 1 to 5, higher
# better). A silent generation scores NaN in ViSQOL (it has no level to scale to the reference's);
# DNSMOS hears the generation alone and scores any clip, silence too. Not in MEASURES, which is
# pal run's checkpoint records: ViSQOL needs at least 0.96 s (audio mode) or 0.64 s (speech mode)
# of a clip, longer than pal run's 8192-sample windows at 11025 Hz (0.74 s), and the registry has
# no field yet to say that a measure is scored per file of pal codec rather than per checkpoint.
VISQOL = Measure("visqol", "ViSQOL MOS-LQO (audio mode)", "ViSQOL MOS-LQO (higher better)", "MOS", False,
                 lambda pair: VISQOL_JUDGE.score(pair.original, pair.generated, pair.sample_rate),
                 judge=VISQOL_JUDGE, may_record=(math.nan,))
VISQOL_SPEECH = Measure("visqol_speech", "ViSQOL MOS-LQO, speech mode (speech)",
                        "ViSQOL speech MOS-LQO (higher better)", "MOS", False,
                        lambda pair: VISQOL_SPEECH_JUDGE.score(pair.original, pair.generated, pair.sample_rate),
                        speech=True, judge=VISQOL_SPEECH_JUDGE, may_record=(math.nan,))
DNSMOS = Measure("dnsmos", "DNSMOS P.835 overall (speech, no reference)", "DNSMOS overall MOS (higher better)", "MOS",
                 False, lambda pair: DNSMOS_JUDGE.score(pair.original, pair.generated, pair.sample_rate), speech=True,
                 judge=DNSMOS_JUDGE)
CODEC_MEASURES = (VISQOL, VISQOL_SPEECH, DNSMOS)


def checkpoint_measures(speech: bool, judges: Iterable[Judge] = ()) -> list[Measure]:
    """The measures scored at a checkpoint: speech's only on speech, a judge's only when asked for."""
    asked = set(judges)
    return [measure for measure in MEASURES if measure.compute is not None
            and (speech or not measure.speech) and (measure.judge is None or measure.judge in asked)]


def measure(original: np.ndarray, generated: np.ndarray, sample_rate: float, speech: bool,
            judges: Iterable[Judge] = ()) -> dict[str, float]:
    """Every measure of a checkpoint, by key, in the records' order: ``snr_db``, ``lsd_overall_db``, ...

    1-D arrays at ``sample_rate``. STOI and PESQ only for ``speech``, a judge's measure (CDPAM)
    only when ``judges`` holds it; a silent or non-finite generation scores NaN where a measure
    is undefined.
    """
    pair = Pair(original, generated, sample_rate)
    return {m.key: m.compute(pair) for m in checkpoint_measures(speech, judges)}


def iterations_to_final(points: list[tuple[int, float]], within: float = WITHIN_DB) -> float:
    """The first checkpoint whose value is within ``within`` of the last checkpoint's."""
    points = sorted(points)
    final = points[-1][1]
    return float(next(iteration for iteration, value in points if value <= final + within))


def recorded_keys(measures: Iterable[Measure]) -> set[str]:
    """The keys in a run's records that ``measures`` are read from: their own, or for a per-run
    measure, the key of the series it is derived from."""
    return {(m.derived_from.key if m.per_run else m.key) for m in measures}

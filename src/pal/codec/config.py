"""``pal codec``'s configuration: every setting declared once (its default, check, help and
flag), in the same declarations as ``pal run``'s (:func:`pal.run.config.setting`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core.errors import UserError
from .segments import ALL
from ..losses.specs import LossSpec
from ..measures.judges import Judge
from ..measures.registry import CDPAM, DNSMOS, VISQOL
from ..run.config import (BETAS, MAX_CHECKPOINTS, SEEDS, Number, NumberList, _boolean, _names, _string,
                          _string_list, _subject, custom_loss_sources, default_of, resolve_device, setting,
                          settings_fields)
from ..run.config import ExperimentConfig
from .model import hop

# A codec's first layer's channels: at 256 the last layers hold 2048 channels and one model's
# weights, gradient and Adam state take about 2 GB (pal.codec.model.parameter_count).
WIDTHS = NumberList(Number(int, 1, 256, why="at 256 one codec and its Adam state take about 2 GB"), 1, 16, unique=True)
BOTTLENECKS = Number(int, 1, 1024, why="latent channels per frame")
RATES = Number(int, 8_000, 48_000, why="the rates the codec is tested at, telephone to 48 kHz")
MAX_STEPS = 10_000_000
MAX_TRAIN_SECONDS = 10_000_000  # about 16 weeks of audio
AUTO, NONE = "auto", "none"
# The judges of the last checkpoint, by the name --judges takes; ViSQOL scores speech files in
# its speech mode too (pal.measures.registry.VISQOL_SPEECH). ``auto`` is every one installed but
# CDPAM, which takes about 2 s per second of audio here (pal.codec.judging).
CODEC_JUDGES: dict[str, Judge] = {measure.key: measure.judge for measure in (VISQOL, DNSMOS, CDPAM)}
AUTO_JUDGES = (VISQOL.key, DNSMOS.key)


def _optional_folder(value, key: str, source: str):
    return None if value is None else _string(value, key, source)


def _amounts(value, key: str, source: str) -> list:
    """``--train-seconds``: 1 to 16 different amounts, each seconds above 0 or ``all``."""
    items = value.split(",") if isinstance(value, str) else value
    amounts = []
    for item in items if isinstance(items, list) else [None]:
        text = item.strip() if isinstance(item, str) else item
        if text == ALL:
            amounts.append(ALL)
            continue
        try:
            number = float(text) if isinstance(text, str) else text
        except ValueError:
            number = None
        if (isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number)
                or not 0 < number <= MAX_TRAIN_SECONDS):
            raise UserError(f"{_subject(key, source)} must be 1 to 16 different amounts, each seconds above 0 "
                            f"(at most {MAX_TRAIN_SECONDS}) or {ALL}, got {value!r}")
        amounts.append(float(number))
    if not 1 <= len(amounts) <= 16 or len(set(amounts)) != len(amounts):
        raise UserError(f"{_subject(key, source)} must be 1 to 16 different amounts, each seconds above 0 "
                        f"or {ALL}, got {value!r}")
    return amounts


def _judge_names(value, key: str, source: str) -> list[str]:
    names = _string_list(value, key, source)
    known = [AUTO, NONE, *CODEC_JUDGES]
    for name in names:
        if name not in known:
            raise UserError(f"{_subject(key, source)}: unknown judge {name!r} (known: {', '.join(known)})")
    if len(names) > 1 and (AUTO in names or NONE in names):
        raise UserError(f"{_subject(key, source)}: {AUTO} and {NONE} stand alone, got {value!r}")
    return names


@dataclass
class CodecConfig:
    """Everything that decides a codec run's results; recorded in its folder (:mod:`pal.codec.folder`)."""

    train: str | None = setting(None, check=_optional_folder, metavar="DIR", sweep=False,
                                help="folder of training audio (default: the built-in corpus's training files)")
    test: str | None = setting(None, check=_optional_folder, metavar="DIR", sweep=False,
                               help="folder of test audio no model trains on (default: the built-in corpus's)")
    losses: list[str] = setting(factory=lambda: ["mrstft", "auditory"], check=_names, metavar="LOSSES",
                                help="comma-separated losses, as pal run's --losses")
    seeds: list[int] = setting(factory=lambda: [0], check=SEEDS, metavar="SEEDS",
                               help="comma-separated seeds: each model's initial weights and segments")
    width: list[int] = setting(factory=lambda: [16], check=WIDTHS, metavar="W",
                               help="comma-separated widths: channels of the codec's first layer (its capacity)")
    bottleneck: int = setting(8, check=BOTTLENECKS, help="latent channels per frame (a frame is 320 samples)")
    train_seconds: list = setting(factory=lambda: [60.0, ALL], check=_amounts, metavar="SECONDS",
                                  help=f"comma-separated amounts of training audio, the first N seconds of the "
                                       f"corpus, or {ALL} (the data question)")
    steps: int = setting(150, check=Number(int, 1, MAX_STEPS), help="updates of each model")
    checkpoint_every: int = setting(75, check=Number(int, 1, MAX_STEPS),
                                    help="steps between checkpoints (every test file decoded and measured)")
    batch_size: int = setting(8, check=Number(int, 1, 1024), help="segments per step, for each model")
    segment_seconds: float = setting(0.5, check=Number(float, 0.05, 60, why="at 8 kHz 0.05 s is 400 samples, "
                                                                             "more than one 320-sample frame"),
                                     help="length of a training segment, rounded down to whole frames")
    sample_rate: int = setting(16_000, check=RATES, help="Hz the codec works at; every file is resampled to it")
    # Adam with DAC's betas (Kumar et al. 2023, conf/base.yml: 0.8, 0.99); a small codec trained
    # for minutes takes a larger step than DAC's 1e-4.
    learning_rate: float = setting(1e-3, check=Number(float, 0, 1, low_excluded=True), help="Adam's step size")
    betas: list[float] = setting(factory=lambda: [0.8, 0.99], check=BETAS, metavar="B1,B2",
                                 help="Adam's two decay rates")
    judges: list[str] = setting(factory=lambda: [AUTO], check=_judge_names, identity="never", metavar="JUDGES",
                                help=f"judges of the last checkpoint: {', '.join(CODEC_JUDGES)}; {AUTO} (those "
                                     f"of {', '.join(AUTO_JUDGES)} installed) or {NONE}")
    speech: list[str] = setting(factory=lambda: ["speech"], check=_string_list, identity="never", metavar="GROUPS",
                                help="test groups scored as speech (STOI, PESQ, DNSMOS, ViSQOL's speech mode)")
    device: str = setting("auto", check=_string, identity="never", help="auto, cpu or cuda[:N]")
    loss_sources: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Every setting through its declared check, then the rules between them (one line each)."""
        for declared in settings_fields(CodecConfig):
            setattr(self, declared.name, declared.metadata["check"](getattr(self, declared.name), declared.name,
                                                                    "the configuration"))
        if self.checkpoint_every > self.steps:
            raise UserError(f"--checkpoint-every must be at most --steps ({self.steps}), got {self.checkpoint_every}")
        if self.steps // self.checkpoint_every > MAX_CHECKPOINTS:
            raise UserError(f"--checkpoint-every {self.checkpoint_every} would write more than {MAX_CHECKPOINTS} "
                            "checkpoints; choose a larger one")
        self.resolve_losses()
        resolve_device(self.device)

    def resolve_losses(self) -> None:
        ExperimentConfig.resolve_losses(self)  # the same labels, records and refusals as pal run's

    def loss_specs(self) -> list[LossSpec]:
        self.resolve_losses()
        return [LossSpec.from_record(self.loss_sources[label]) for label in self.losses]

    @property
    def segment_samples(self) -> int:
        """A training segment's samples: ``segment_seconds`` rounded down to whole codec frames."""
        return int(self.segment_seconds * self.sample_rate) // hop() * hop()

    def chosen_judges(self) -> tuple[list[Judge], list[Judge]]:
        """The judges to run and the ones ``auto`` skips as not installed (each gets a note).
        A judge named but not installed is refused, naming its extra."""
        if self.judges == [NONE]:
            return [], []
        if self.judges == [AUTO]:
            wanted = [CODEC_JUDGES[name] for name in AUTO_JUDGES]
            return [j for j in wanted if j.installed()], [j for j in wanted if not j.installed()]
        for name in self.judges:
            judge = CODEC_JUDGES[name]
            if not judge.installed():
                raise UserError(f"--judges {name}: {judge.name} is not installed "
                                f"(pip install 'perceptual-audio-loss[{judge.extra}]' adds it)")
        return [CODEC_JUDGES[name] for name in self.judges], []

    def scores_speech(self, group: str) -> bool:
        return group in self.speech or "*" in self.speech

    def identity(self) -> dict:
        """The settings that decide the numbers: a folder resumes only under the same ones."""
        identity = {declared.name: getattr(self, declared.name) for declared in settings_fields(CodecConfig)
                    if declared.metadata["identity"] == "always"}
        custom = custom_loss_sources(self.loss_sources)
        return identity | ({"loss_sources": custom} if custom else {})


def codec_default(name: str):
    return default_of(name, CodecConfig)

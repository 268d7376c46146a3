"""``pal codec``: every (loss, width, data, seed) codec trained at once on a training corpus, and
judged on the whole files of a test corpus that no model saw, into a codec run folder.

Everything a user can get wrong is checked before the folder is touched; a run killed at any
moment resumes from its last saved state when the same command runs again, and ends
bit-identical to an uninterrupted one (:mod:`pal.codec.folder` holds the layout).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from perceptual_audio_loss import __version__

from ..core.audio import write_wav
from ..core.errors import UserError
from ..core.files import failure
from ..core.locks import writing
from .corpus import SILENCE, CorpusFile, read_corpus, same_folder, shared_files
from .segments import TrainingSet, seconds_of
from ..losses.guard import blame
from ..losses.registry import DecodingLoss
from ..losses.specs import build_loss, probe
from ..run.config import full_float32, resolve_device
from ..run.experiment import RunProgress
from ..run.folder import open_run_folder
from . import judging
from .config import CodecConfig
from .folder import ENTRIES, CodecFolder, ModelStatus, data_name, model_label
from .model import latent_rate, parameter_count
from .train import CodecHooks, CodecModel, CodecSettings, every_model, train_codecs

MIN_TEST_SECONDS = 1.0  # ViSQOL's audio mode needs 0.96 s of a file (pal.measures.registry.VISQOL)


@dataclass
class CodecOutcome:
    page: Path
    failed: list[str]  # "<model label>: reason" for every model that stopped early
    resumed_from: int  # the step a resumed run continued after; 0 for a new one
    already_finished: bool = False


@dataclass(frozen=True)
class CheckedCodec:
    """What :func:`run_codec` checked before touching the folder."""

    config: CodecConfig
    out: Path
    train: list[CorpusFile]
    test: list[CorpusFile]
    sets: dict[str, TrainingSet]  # by data name
    losses: dict[str, nn.Module]
    device: torch.device
    identity: dict
    report: Callable[[Path], Path]

    def models(self) -> list[CodecModel]:
        config = self.config
        return every_model(config.width, config.train_seconds, config.losses, config.seeds)


def run_codec(config: CodecConfig, out: Path, force: bool = False, progress: bool = True,
              page: Callable[[Path], Path] | None = None) -> CodecOutcome:
    """Validate everything, then train every model at once, decode and judge the test files,
    and write the folder and (with ``page``) its page; continue an unfinished run of the same
    configuration in ``out``."""
    config.validate()
    judges, missing = config.chosen_judges()
    for judge in missing:
        print(judge.not_installed, file=sys.stderr, flush=True)
    train, test, losses, sets = read_inputs(config)
    identity = config.identity() | {"train_files": [f.sha256 for f in train],
                                    "test_files": [f.sha256 for f in test]}
    out = Path(out)
    checked = CheckedCodec(config, out, train, test, sets, losses, resolve_device(config.device), identity,
                           page if page is not None else (lambda out: CodecFolder(out).page))
    existed = out.exists()
    with writing(out, "codec run"), full_float32():
        return _run_locked(checked, judges, force, progress, created=not existed)


def read_inputs(config: CodecConfig) -> tuple[list[CorpusFile], list[CorpusFile], dict[str, nn.Module],
                                               dict[str, TrainingSet]]:
    """Everything the run reads and builds before its folder is touched, each refusal one line:
    the training and test files, the losses, the training set of every amount of data (by name)."""
    train, test = read_corpora(config)
    losses = build_losses(config)
    sets = {data_name(amount): TrainingSet.first_seconds(train, seconds_of(amount),
                                                         config.segment_samples, config.sample_rate)
            for amount in config.train_seconds}
    return train, test, losses, sets


def read_corpora(config: CodecConfig) -> tuple[list[CorpusFile], list[CorpusFile]]:
    """The training and test files, with the checks between them."""
    if same_folder(config.train, config.test):
        raise UserError(f"--train and --test are the same folder ({config.train}); the test files must be "
                        "audio no model trains on")
    train = read_corpus(config.train, "train", config.sample_rate, "--train")
    test = read_corpus(config.test, "test", config.sample_rate, "--test")
    for seen, unseen in shared_files(train, test):
        raise UserError(f"{unseen.source}: the same audio as the training file {seen.source}; the test files "
                        "must be audio no model trains on")
    for f in test:
        if len(f.samples) < MIN_TEST_SECONDS * config.sample_rate:
            raise UserError(f"{f.source}: {len(f.samples) / config.sample_rate:.3g} s is too short to judge "
                            f"(a test file needs at least {MIN_TEST_SECONDS:g} s, ViSQOL's shortest)")
        if float(np.max(np.abs(f.samples))) < SILENCE:
            raise UserError(f"{f.source}: silent (no sample above {SILENCE:g}); a test file must hold sound to judge")
    return train, test


def build_losses(config: CodecConfig) -> dict[str, nn.Module]:
    losses = {}
    for spec in config.loss_specs():
        loss = build_loss(spec, config.sample_rate, config.segment_samples)
        if isinstance(loss, DecodingLoss):
            raise UserError(f"loss {spec.label!r} trains {loss.output_channels} values a sample (a decoding "
                            "loss); the codec's decoder writes audio, so it cannot train with it")
        probe(loss, spec, config.segment_samples, config.sample_rate)
        losses[spec.label] = loss
    return losses


def _run_locked(checked: CheckedCodec, judges, force: bool, progress: bool, created: bool) -> CodecOutcome:
    out, config = checked.out, checked.config
    try:
        mode = open_run_folder(out, checked.identity, force, CodecFolder(out), ENTRIES, "codec run")
    except OSError as error:
        raise UserError(f"{out}: cannot prepare the run folder ({error.strerror or error})") from None
    folder, models = CodecFolder(out), checked.models()
    if mode == "finished":
        judging.measure_run(folder, judges)  # a judge asked for since: scored now, the rest from its cache
        return CodecOutcome(checked.report(out), _failed(folder.read_runs()), config.steps, True)
    _write_records(checked, models, created)
    state = folder.load_state(checked.identity, len(models), config.steps) if mode == "resume" else None
    results, seconds = _train(checked, models, state, progress)
    try:
        statuses = [ModelStatus(m.loss, m.width, m.train_seconds, m.seed,
                                status="failed" if hasattr(r.outcome, "reason") else "finished",
                                reason=getattr(r.outcome, "reason", None),
                                stopped_at=r.outcome.iteration if hasattr(r.outcome, "reason") else None,
                                final_loss=r.losses[-1] if r.losses else None, seconds=seconds,
                                checkpoints=folder.decodes_on_disk(m, checked.test[0].name))
                    for m, r in zip(models, results)]
        for model, result in zip(models, results):
            folder.write_losses(model, result.losses)
        judging.measure_run(folder, judges, statuses)
        folder.write_runs(statuses)  # last: "finished" only once everything else is written
        return CodecOutcome(checked.report(out), _failed(statuses), state["step"] if state else 0)
    except OSError as error:
        raise UserError(f"{out}: writing the run's results failed ({failure(error, out)}); the training is "
                        "saved: run the same command again to finish") from None


def _write_records(checked: CheckedCodec, models: list[CodecModel], created: bool) -> None:
    """The configuration first (from then on the folder is a run this command resumes), the test
    files as the codec hears them, every model's status; again on a resume (the same bytes)."""
    out, config = checked.out, checked.config
    folder = CodecFolder(out)

    def described(f: CorpusFile) -> dict:
        return {"name": f.name, "group": f.group, "source": f.source, "sha256": f.sha256,
                "seconds": round(len(f.samples) / config.sample_rate, 6), "credit": f.credit}

    try:
        out.mkdir(parents=True, exist_ok=True)
        folder.write_config(asdict(config) | {
            "test_files": [described(f) for f in checked.test], "train_files": [described(f) for f in checked.train],
            "latent_rate": latent_rate(config.sample_rate, config.bottleneck),
            "parameters": {str(w): parameter_count(w, config.bottleneck) for w in config.width},
            "data_seconds": {name: s.seconds_used for name, s in checked.sets.items()},
            "resolved_device": str(checked.device), "version": __version__, "identity": checked.identity,
        })
        for f in checked.test:
            folder.test_file(f.name).parent.mkdir(parents=True, exist_ok=True)
            write_wav(folder.test_file(f.name), f.samples, config.sample_rate)
        for model in models:
            for f in checked.test:
                folder.decode(model, f.name, 1).parent.mkdir(parents=True, exist_ok=True)
        if not folder.runs.exists():
            folder.write_runs([ModelStatus(m.loss, m.width, m.train_seconds, m.seed) for m in models])
    except OSError as error:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise UserError(f"{out}: cannot write the run folder ({failure(error, out)})") from None


def _train(checked: CheckedCodec, models: list[CodecModel], state: dict | None, progress: bool):
    out, config = checked.out, checked.config
    folder = CodecFolder(out)
    bars = RunProgress([model_label(m) for m in models], config.steps, progress)
    bars.start(state["step"] if state else 0)

    def on_checkpoint(step: int, decodes: list[np.ndarray], running: list[bool]) -> None:
        for f, per_model in zip(checked.test, decodes):
            for model, samples, still in zip(models, per_model, running):
                if still:
                    write_wav(folder.decode(model, f.name, step), samples, config.sample_rate)

    settings = CodecSettings(config.steps, config.checkpoint_every, config.batch_size, config.bottleneck,
                             config.learning_rate, tuple(config.betas), checked.device)
    hooks = CodecHooks(on_progress=bars.update, on_checkpoint=on_checkpoint,
                       on_save=lambda s: folder.save_state(s, checked.identity))
    sets = [checked.sets[data_name(m.train_seconds)] for m in models]
    started = time.perf_counter()
    try:
        results = train_codecs(models, sets, checked.losses, settings, [f.samples for f in checked.test], hooks,
                               resume=state)
    except Exception as error:
        loss_failure = blame(error, checked.losses.values())
        if loss_failure is not None:
            raise loss_failure from None
        if isinstance(error, OSError):
            raise UserError(f"{out}: writing the run failed ({failure(error, out)}); what was saved is kept: "
                            "run the same command again to resume") from None
        raise
    finally:
        bars.close()
    return results, round(time.perf_counter() - started, 3)


def _failed(statuses: list[ModelStatus]) -> list[str]:
    return [f"{model_label(s.model)}: {s.reason}" for s in statuses if s.status == "failed"]


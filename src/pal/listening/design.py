"""What a listening test of a run plays: for each clip, the reference and the conditions to rate.

MUSHRA (ITU-R BS.1534-3) rates, per clip, a hidden copy of the reference, a low-pass anchor made
from it and each loss's generation at one checkpoint. Preference mode plays two losses' generations.
A ``pal codec`` folder is read by :mod:`pal.listening.codec` (each test file is a clip, each
loss's decode at one width, amount of data and step a condition); both are built of
:mod:`pal.listening.screens`' pieces (level matching, anchor, reading and checks), and
:func:`load_stimuli` takes either folder.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from ..run.folder import RunFolder, RunRecord
from .screens import (ANCHOR, MODES, REFERENCE, ClipStimuli, Expected, Stimuli, chosen_losses, clip_stimuli,
                      instead, level_matched, low_pass_anchor, read_checked, setting_note, why_missing)

__all__ = ["ANCHOR", "REFERENCE", "ClipStimuli", "Stimuli", "level_matched", "listening_folder", "load_stimuli",
           "low_pass_anchor", "run_folder", "setting_note"]


def load_stimuli(run_dir: Path, mode: str = "mushra", checkpoint: int | None = None,
                 compare: list[str] | None = None, width: int | None = None,
                 train_seconds: str | None = None) -> Stimuli:
    """The stimuli of every clip of the run at ``checkpoint`` (default: the last), first seed; of a
    codec run, of every test file for one ``width`` and amount of ``train_seconds``
    (:func:`pal.listening.codec.load_codec_stimuli`).

    Every file is read whole and checked before anything is served: a missing, truncated or
    undecodable WAV, or one that is not the run's window (mono, its rate and length, finite), is
    one line naming it (:class:`~pal.core.errors.UserError`), never a fragment served to raters.
    """
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    folder = listening_folder(run_dir, width, train_seconds)
    if not isinstance(folder, RunFolder):
        from .codec import load_codec_stimuli

        return load_codec_stimuli(folder, mode, checkpoint, compare, width, train_seconds)
    config, _, _ = folder.read_records()
    checkpoints = config.checkpoints()
    checkpoint = checkpoints[-1] if checkpoint is None else checkpoint
    if checkpoint not in checkpoints:
        raise UserError(f"no checkpoint {checkpoint} in this run; it has {', '.join(map(str, checkpoints))}")
    losses = chosen_losses(config.losses, mode, compare)
    seed, sample_rate = config.seeds[0], config.sample_rate
    missing = _missing_checkpoints(folder, config, losses, checkpoint)
    if missing:
        raise UserError(_missing_message(folder, config, losses, checkpoint, missing, mode))
    expected = Expected(sample_rate, config.window, "the run's", "the run's window of")
    clips = []
    for clip in config.clip_names:
        reference = read_checked(folder.original(clip), expected, "the test needs every clip's original")
        generated = {loss: read_checked(folder.checkpoint(clip, loss, seed, checkpoint), expected,
                                        f"leave {loss} out with --compare, or choose another --checkpoint")
                     for loss in losses}
        clips.append(clip_stimuli(clip, reference, generated, mode, sample_rate))
    return Stimuli(run_dir, mode, checkpoint, sample_rate, clips)


def listening_folder(run_dir: Path, width: int | None = None, train_seconds: str | None = None):
    """The run folder (:class:`RunFolder`) or codec run folder (:class:`~pal.codec.folder.CodecFolder`)
    at ``run_dir``; one line for anything else, and for a codec run's ``--width`` or
    ``--train-seconds`` given with a run folder."""
    from ..codec.folder import CodecFolder

    codec = CodecFolder(Path(run_dir))
    if codec.is_run():
        return codec
    folder = run_folder(run_dir)
    given = [flag for flag, value in (("--width", width), ("--train-seconds", train_seconds)) if value is not None]
    if given:
        raise UserError(f"{run_dir}: a pal run folder, whose models have no width or amount of training data; "
                        f"{' and '.join(given)} choose a codec run's models (pal codec): leave "
                        f"{'them' if len(given) > 1 else 'it'} out")
    return folder


def run_folder(run_dir: Path) -> RunFolder:
    """The run folder at ``run_dir``; one line for anything else (a sweep folder, a file, nothing)."""
    from ..run.sweep_folder import SHARDS, SWEEP_FILE

    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    if folder.is_run():
        return folder
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such run folder")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: a file, not a run folder")
    if (run_dir / SWEEP_FILE).is_file():
        shards = sorted(path for path in (run_dir / SHARDS).glob("*") if RunFolder(path).is_run())
        example = f"one of its shards, such as {shards[0]}" if shards else "its shards, once they have run"
        raise UserError(f"{run_dir}: a sweep folder, not a run folder; pal listen takes a run folder: {example}")
    folder.require()
    return folder


def _missing_checkpoints(folder: RunFolder, config: RunRecord, losses: list[str],
                         checkpoint: int) -> list[tuple[str, str]]:
    """The (clip, loss) runs of the first seed with no file for ``checkpoint``."""
    seed = config.seeds[0]
    return [(clip, loss) for clip in config.clip_names for loss in losses
            if not folder.checkpoint(clip, loss, seed, checkpoint).exists()]


def _missing_message(folder: RunFolder, config: RunRecord, losses: list[str], checkpoint: int,
                     missing: list[tuple[str, str]], mode: str) -> str:
    """The first missing checkpoint, why it is missing (its run failed, or is not finished), and
    what would work instead."""
    seed = config.seeds[0]
    clip, loss = missing[0]
    status = {status.key: status for status in folder.read_runs()}.get((clip, loss, seed))
    why = why_missing(status, "run", "iteration")
    others = instead(losses, {loss for _, loss in missing}, mode)
    return (f"{folder.checkpoint(clip, loss, seed, checkpoint)}: missing ({why}); {len(missing)} checkpoint(s) "
            f"at iteration {checkpoint} missing in all; {others}choose another --checkpoint")

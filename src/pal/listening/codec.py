"""What a listening test of a codec run plays: each test file, and each loss's decode of it.

A codec run trains a model per (loss, width, training data, seed); a test rates one *setting*,
one width and one amount of training data (default: the largest width and the most data, ``all``
where the run has it), at one step (default: the last), first seed. Each test file as the codec
hears it (``test/<file>.wav``) is a clip's reference; each loss's decode of it is a condition.
The screens, level matching, anchor, reading and checks are :mod:`pal.listening.screens`', as a run's are.
"""

from __future__ import annotations

import math

from ..codec.folder import CodecFolder, CodecRecord, data_name
from ..codec.segments import ALL, seconds_of
from ..codec.train import CodecModel
from ..core.errors import UserError
from .screens import Expected, Stimuli, chosen_losses, clip_stimuli, instead, read_checked, why_missing


def load_codec_stimuli(folder: CodecFolder, mode: str, checkpoint: int | None, compare: list[str] | None,
                       width: int | None, train_seconds: str | None) -> Stimuli:
    """The stimuli of every test file of the codec run in ``folder``, for one setting at one step.

    Every file is read whole and checked first: a test file must be mono at the codec's rate and
    as long as the record says, a decode as long as its test file; a decode missing because its
    model failed or is not finished is one line saying so and what would work instead.
    """
    config, statuses, _ = folder.read_records()
    width = chosen_width(config, width)
    amount = chosen_data(config, train_seconds)
    checkpoints = config.checkpoints()
    checkpoint = checkpoints[-1] if checkpoint is None else checkpoint
    if checkpoint not in checkpoints:
        raise UserError(f"no checkpoint {checkpoint} in this codec run; it has {', '.join(map(str, checkpoints))}")
    losses = chosen_losses(config.losses, mode, compare)
    models = {loss: CodecModel(loss, width, seconds_of(amount), config.seeds[0]) for loss in losses}
    missing = [(name, loss) for name in config.file_names() for loss in losses
               if not folder.decode(models[loss], name, checkpoint).exists()]
    if missing:
        raise UserError(_missing_message(folder, config, statuses, models, checkpoint, missing, mode))
    rate, clips = config.sample_rate, []
    for test_file in config.test_files:
        name = test_file["name"]
        as_recorded = Expected(rate, round(test_file["seconds"] * rate), "the codec's", "the record's")
        reference = read_checked(folder.test_file(name), as_recorded, "the test plays every test file as the codec "
                                 "heard it")
        its_length = Expected(rate, len(reference), "the codec's", "its test file's")
        generated = {loss: read_checked(folder.decode(model, name, checkpoint), its_length,
                                        f"leave {loss} out with --compare, or choose another {_choices(config)}")
                     for loss, model in models.items()}
        clips.append(clip_stimuli(name, reference, generated, mode, rate, title=f"{name} ({test_file['group']})"))
    return Stimuli(folder.root, mode, checkpoint, rate, clips, width=width, train_seconds=data_name(amount))


def chosen_width(config: CodecRecord, width: int | None) -> int:
    """``--width``, one the run trained; by default its largest."""
    if width is None:
        return max(config.width)
    if width not in config.width:
        raise UserError(f"--width {width}: this codec run has no such width; it has "
                        f"{', '.join(map(str, config.width))}")
    return width


def chosen_data(config: CodecRecord, train_seconds: str | None):
    """``--train-seconds`` (``all`` or seconds, ``30`` or ``30s``) as the run records it (``all`` or a
    number), one amount the run trained on; by default its most, ``all`` where it has it."""
    amounts = config.train_seconds
    if train_seconds is None:
        return ALL if ALL in amounts else max(amounts)
    text = str(train_seconds).strip()
    if text == ALL and ALL in amounts:
        return ALL
    try:
        seconds = float(text.removesuffix("s"))
    except ValueError:
        seconds = math.nan
    match = next((a for a in amounts if a != ALL and a == seconds), None)
    if match is None:
        shown = ", ".join(ALL if a == ALL else f"{a:g}" for a in amounts)
        raise UserError(f"--train-seconds {text}: this codec run has no such amount of training data; it has {shown}")
    return match


def _choices(config: CodecRecord) -> str:
    """The flags that choose another setting of this run: ``--checkpoint``, and ``--width`` or
    ``--train-seconds`` where the run has more than one."""
    flags = ["--checkpoint", *(["--width"] if len(config.width) > 1 else []),
             *(["--train-seconds"] if len(config.train_seconds) > 1 else [])]
    return ", ".join(flags[:-1]) + f" or {flags[-1]}" if len(flags) > 1 else flags[0]


def _missing_message(folder: CodecFolder, config: CodecRecord, statuses, models: dict[str, CodecModel],
                     checkpoint: int, missing: list[tuple[str, str]], mode: str) -> str:
    """The first missing decode, why it is missing (its model failed, or is not finished), and what
    would work instead."""
    name, loss = missing[0]
    model = models[loss]
    status = next((status for status in statuses if status.model == model), None)
    why = why_missing(status, "model", "step")
    others = instead(list(models), {loss for _, loss in missing}, mode)
    return (f"{folder.decode(model, name, checkpoint)}: missing ({why}); {len(missing)} decode(s) at step "
            f"{checkpoint} missing in all; {others}choose another {_choices(config)}")

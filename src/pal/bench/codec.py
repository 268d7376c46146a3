"""``pal bench --codec``: one training step of ``pal codec`` per loss, model included (one codec of
the default width, a batch of the default segments, forward, loss with its target transform,
backward, Adam), timed with the losses taking turns, and the operations each step dispatches
(:mod:`pal.bench.opcount`): the CUDA path's launch count, read on the CPU. Each loss's time is
also given against MR-STFT's, measured in the same run (issue 32's cost goal: at most 1.5 x)."""

from __future__ import annotations

import statistics

import torch

from ..codec.config import CodecConfig, codec_default
from ..codec.train import CodecModel, CodecSettings, CodecTraining
from ..codec.corpus import read_corpus
from ..codec.segments import TrainingSet
from ..losses.registry import REGISTERED
from ..losses.specs import build_loss, parse_loss_spec
from .common import time_interleaved
from .ops import on_cuda_path
from .opcount import count_ops

REFERENCE = "mrstft"  # the field's standard loss, the ratio's denominator


def codec_losses() -> list[str]:
    """Every registered loss a codec can train with (not the decoding mu-law objective)."""
    return [name for name, record in REGISTERED.items() if not record.decodes]


def codec_step(loss_name: str, device: str = "cpu", cuda_path: bool = False):
    """A zero-argument training step of one default codec under ``loss_name`` on the built-in corpus;
    with ``cuda_path``, the loss on the operations CUDA runs (:func:`~pal.bench.ops.on_cuda_path`)."""
    config = CodecConfig(losses=[loss_name])
    config.validate()
    files = read_corpus(None, "train", config.sample_rate, "--train")
    training_set = TrainingSet.first_seconds(files, None, config.segment_samples, config.sample_rate)
    loss = build_loss(parse_loss_spec(loss_name), config.sample_rate, config.segment_samples)
    loss = on_cuda_path(loss) if cuda_path else loss
    settings = CodecSettings(10 ** 6, 10 ** 6, config.batch_size, config.bottleneck, config.learning_rate,
                             tuple(config.betas), device)
    training = CodecTraining([CodecModel(loss_name, config.width[0], None, 0)], [training_set], {loss_name: loss},
                             settings)
    counter = iter(range(1, 10 ** 6))

    def step():
        training.step(next(counter))

    return step


def bench_codec(losses: list[str] | None = None, repeats: int = 5, device: str = "cpu") -> dict:
    """Seconds (median) of one codec training step per loss, each loss as a user builds it (on a
    CPU the post's loss runs its compiled kernels), and the operations of the same step on the
    path CUDA runs."""
    losses = list(losses or codec_losses())
    if REFERENCE not in losses:
        losses.append(REFERENCE)
    steps = {name: codec_step(name, device) for name in losses}
    seconds = time_interleaved(steps, repeats)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ops = {name: _counted(codec_step(name, device, cuda_path=True)) for name in losses}
    return {
        "settings": {"width": codec_default("width")[0], "bottleneck": codec_default("bottleneck"),
                     "batch": codec_default("batch_size"), "segment_seconds": codec_default("segment_seconds"),
                     "sample_rate": codec_default("sample_rate"), "device": device, "repeats": repeats},
        "losses": {name: {"seconds": medians[name], "ops": ops[name],
                          "against_mrstft": medians[name] / medians[REFERENCE]} for name in losses},
    }


def _counted(step) -> int:
    """The operations of one step, after an uncounted one (caches a loss fills on its first call)."""
    step()
    return count_ops(step).total


def print_codec(report: dict) -> None:
    s = report["settings"]
    print(f"codec training step, model included: width {s['width']}, bottleneck {s['bottleneck']}, batch "
          f"{s['batch']} x {s['segment_seconds']:g} s at {s['sample_rate']} Hz, {s['device']}, median of "
          f"{s['repeats']} (losses in turn)")
    print("| loss | ms per step | x MR-STFT's | ops per step (CUDA's path) |")
    print("|---|---|---|---|")
    for name, row in report["losses"].items():
        print(f"| {name} | {1000 * row['seconds']:.0f} | {row['against_mrstft']:.2f} | {row['ops']} |")

"""``pal bench --ops``: the aten operations one forward+backward of each loss dispatches, and one
training iteration of the default run, on the code path CUDA runs, counted on the CPU as well
(:mod:`pal.bench.opcount`): the GPU's launch budget, watched without a GPU."""

from __future__ import annotations

import sys

import torch

from .common import EXPERIMENT_LOSSES, SAMPLE_RATE, WINDOW, post_targets
from .matrix import MATRIX_LOSSES, matrix_loss

OPS_SCHEMA = "pal-bench-ops/1"


OPS_BATCHES = (1, 8)


# Our losses on the code path CUDA runs, and the matrix's peers (those as the matrix builds them).
OPS_LOSSES = {
    "perceptual": "PerceptualLoss(rate, compiled=False)",
    "perceptual-44k": "PerceptualLoss(rate, n_bands=128, taps=2048, stride=4, compiled=False)",
    "masked": "MaskedLoss(rate)",
    "masked+perceptual": "the registered blend, its PerceptualLoss compiled=False",
    "auditory": MATRIX_LOSSES["auditory"],
    "mrstft": MATRIX_LOSSES["mrstft"],
    "mel": MATRIX_LOSSES["mel"],
    "l1": MATRIX_LOSSES["l1"],
    "mse": MATRIX_LOSSES["mse"],
}


def on_cuda_path(loss: torch.nn.Module) -> torch.nn.Module:
    """``loss`` with every :class:`PerceptualLoss` in it off the CPU's compiled kernels: on the CPU
    ``compiled=False`` runs exactly the operations CUDA runs (the kernels are CPU-only)."""
    from perceptual_audio_loss import PerceptualLoss

    for module in loss.modules():
        if isinstance(module, PerceptualLoss):
            module.compiled = False
    return loss


def ops_loss(name: str, rate: int) -> torch.nn.Module:
    """The loss ``name`` of :data:`OPS_LOSSES` on its CUDA path."""
    if name == "masked+perceptual":
        from perceptual_audio_loss import build_loss

        return on_cuda_path(build_loss(name, rate))
    return on_cuda_path(matrix_loss(name, rate))


def loss_call_ops(name: str, batch: int, device: str = "cpu") -> dict:
    """Operations of one forward+backward of ``name`` on ``(batch, 1, 8192)`` at 11025 Hz."""
    from .opcount import forward_backward_ops

    generator = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(batch, 1, WINDOW, generator=generator)
    y = 0.1 * torch.randn(batch, 1, WINDOW, generator=generator)
    counted = forward_backward_ops(ops_loss(name, SAMPLE_RATE).to(device), x.to(device), y.to(device))
    return {"loss": name, "batch": batch, "ops": counted.total, "views": counted.views}


def training_iteration_ops(clips=None, losses=EXPERIMENT_LOSSES, device: str = "cpu") -> dict:
    """Operations of one training iteration of ``pal run``'s default run (its clips x mse and
    perceptual) as CUDA runs it: every loss on its CUDA path, the generators in the ``"grouped"``
    mode, fused Adam.

    The third iteration of :func:`~pal.run.train.train_batched` itself is counted: from the end of the
    second to the end of the third (the first also builds Adam's state; no checkpoint, save or
    read of the run's health falls between)."""
    from perceptual_audio_loss import build_loss

    from ..clips import DEFAULT_CLIPS
    from .opcount import OpCounter
    from ..run.train import RunSpec, TrainHooks, TrainSettings, train_batched

    clips = tuple(clips or DEFAULT_CLIPS)
    runs = [RunSpec(target, loss, 0) for target in range(len(clips)) for loss in losses]
    modules = {name: on_cuda_path(build_loss(name, SAMPLE_RATE)) for name in losses}
    targets = post_targets(clips)
    totals: dict[int, tuple[int, int]] = {}  # (ops, views) counted by the end of each iteration

    def at_end_of(iteration: int, _history) -> None:
        totals[iteration] = (counter.total, counter.views)

    with OpCounter() as counter:
        train_batched(targets, runs, modules, TrainSettings(3, 3, device, stack_mode="grouped", fused_adam=True),
                      TrainHooks(on_progress=at_end_of))
    ops, views = (totals[3][i] - totals[2][i] for i in range(2))
    return {"clips": list(clips), "losses": list(losses), "runs": len(runs), "stack_mode": "grouped",
            "ops": ops, "views": views}


def bench_ops(losses=None, batches=None, iteration: bool = True, device: str = "cpu") -> dict:
    """Operation counts per loss call (each of ``losses`` at each of ``batches``) and, with
    ``iteration``, per training iteration of the default run."""
    calls = []
    for name in losses or OPS_LOSSES:
        for batch in batches or OPS_BATCHES:
            calls.append(loss_call_ops(name, batch, device))
            print(f"  counted {name} x{batch}: {calls[-1]['ops']} ops", file=sys.stderr, flush=True)
    return {"schema": OPS_SCHEMA, "torch": torch.__version__, "device": device, "sample_rate": SAMPLE_RATE,
            "samples": WINDOW,
            "losses": {name: OPS_LOSSES[name] for name in dict.fromkeys(c["loss"] for c in calls)},
            "per_call": calls, "per_iteration": training_iteration_ops(device=device) if iteration else None}


def print_ops(report: dict, described: dict | None = None) -> None:
    """The counts as a table; a loss described in ``described`` (the matrix's) as here is not again."""
    batches = list(dict.fromkeys(c["batch"] for c in report["per_call"]))
    print(f"aten operations dispatched per forward+backward, {report['sample_rate']} Hz, {report['samples']} samples,")
    print(f"on the CUDA path, counted on {report['device']} (views, which launch nothing, in brackets):")
    print(f"  {'loss':18s} " + " ".join(f"{'batch ' + str(b):>17s}" for b in batches))
    rows: dict[str, dict] = {}
    for call in report["per_call"]:
        rows.setdefault(call["loss"], {})[call["batch"]] = call
    for name, by_batch in rows.items():
        print(f"  {name:18s} " + " ".join(f"{by_batch[b]['ops']:>9,d} ({by_batch[b]['views']:>5,d})" for b in batches))
    iteration = report["per_iteration"]
    if iteration:
        print(f"per training iteration of the default run ({len(iteration['clips'])} clips x "
              f"{', '.join(iteration['losses'])}, {iteration['runs']} runs, {iteration['stack_mode']} stack): "
              f"{iteration['ops']:,d} ({iteration['views']:,d})")
    for name, description in report["losses"].items():
        if (described or {}).get(name) != description:
            print(f"  {name}: {description}")

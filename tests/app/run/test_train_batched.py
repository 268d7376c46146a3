"""Batched training (the generator stack, one model per run) against training one run at a time."""

import numpy as np
import pytest
import torch

from perceptual_audio_loss import PerceptualLoss, build_loss
from perceptual_audio_loss.losses import TargetLoss
from pal.cli import main
from pal.run.config import full_float32
from pal.run.generator import GeneratorStack, seeded_generator_and_latent
from pal.run.train import (Diverged, Finished, RunSpec, TrainSettings, _saved_failure, train_batched,
                           train_one)

SAMPLE_RATE = 11025


def stacked_slice(stack, layer, index):
    weight = stack.weights[layer]
    return weight.grad.view(stack.n_models, -1, *weight.shape[1:])[index]


@pytest.mark.parametrize("mode", ["looped", "grouped"])
def test_generator_stack_is_its_generators(mode):
    seeded = [seeded_generator_and_latent(seed) for seed in (0, 1, 2)]
    stack = GeneratorStack([model for model, _ in seeded], mode)
    latents = torch.cat([latent for _, latent in seeded])
    separate = torch.cat([model(latent) for model, latent in seeded])
    if mode == "looped":
        assert torch.equal(stack(latents), separate)
    else:
        torch.testing.assert_close(stack(latents), separate, rtol=1e-4, atol=1e-5)
    for index, (model, _) in enumerate(seeded):
        assert all(torch.equal(a, b) for a, b in zip(stack.unstack(index).parameters(), model.parameters()))


def short_targets():
    t = torch.arange(8192) / SAMPLE_RATE
    return torch.stack([torch.sin(2 * np.pi * 220 * t), torch.sign(torch.sin(2 * np.pi * 3 * t)) * 0.5]).unsqueeze(1)


SHORT_LOSSES = {"mse": build_loss("mse", SAMPLE_RATE), "p": PerceptualLoss(SAMPLE_RATE, n_bands=64, taps=128)}
MIXED_RUNS = [RunSpec(0, "mse", 0), RunSpec(1, "p", 1), RunSpec(1, "mse", 2), RunSpec(0, "p", 3)]


@pytest.mark.parametrize("mode", ["looped", "grouped"])
def test_every_generator_gets_its_own_gradient(mode):
    targets = short_targets()
    seeded = [seeded_generator_and_latent(run.seed) for run in MIXED_RUNS]
    stack = GeneratorStack([model for model, _ in seeded], mode)
    outputs = stack(torch.cat([latent for _, latent in seeded]))
    total = sum(TargetLoss(SHORT_LOSSES[run.loss], targets[run.target : run.target + 1])(outputs[i : i + 1])[0]
                for i, run in enumerate(MIXED_RUNS))
    total.backward()
    for index, (run, (model, latent)) in enumerate(zip(MIXED_RUNS, seeded)):
        SHORT_LOSSES[run.loss](model(latent), targets[run.target : run.target + 1]).backward()
        for layer, conv in enumerate(model.convs):
            mine = stacked_slice(stack, layer, index)
            if mode == "looped":
                assert torch.equal(mine, conv.weight.grad)
            else:
                assert ((mine - conv.weight.grad).norm() / conv.weight.grad.norm()).item() < 1e-4


def test_batched_training_is_bit_identical_to_one_by_one():
    targets = short_targets()
    batched = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, TrainSettings(4, 2, stack_mode="looped"))
    for run, result in zip(MIXED_RUNS, batched):
        alone = train_one(targets[run.target : run.target + 1], SHORT_LOSSES[run.loss], run.seed, TrainSettings(4, 2))
        assert result.losses == alone.losses
        for iteration in (2, 4):
            np.testing.assert_array_equal(result.checkpoints[iteration], alone.checkpoints[iteration])


def test_a_run_does_not_depend_on_its_batch_mates():
    targets = short_targets()
    together = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, TrainSettings(3, 3))
    alone = train_batched(targets, MIXED_RUNS[1:2], SHORT_LOSSES, TrainSettings(3, 3))
    assert together[1].losses == alone[0].losses


def test_grouped_training_matches_one_by_one_within_rounding():
    targets = short_targets()
    batched = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, TrainSettings(3, 3, stack_mode="grouped"))
    for run, result in zip(MIXED_RUNS, batched):
        alone = train_one(targets[run.target : run.target + 1], SHORT_LOSSES[run.loss], run.seed, TrainSettings(3, 3))
        # The first loss is of the untrained generators: equal up to float32 rounding.
        assert result.losses[0] == pytest.approx(alone.losses[0], rel=1e-5)
        # Adam with beta1 = 0 moves every weight by about lr x sign(gradient), so rounding-level
        # gradient differences grow; after three updates they are still far below the signal.
        np.testing.assert_allclose(result.losses, alone.losses, rtol=1e-3)
        scale = np.abs(alone.checkpoints[3]).max()
        assert np.abs(result.checkpoints[3] - alone.checkpoints[3]).max() < 1e-2 * scale


def precision_flags() -> tuple[bool, bool, bool, bool]:
    return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)


def set_precision_flags(flags: tuple[bool, bool, bool, bool]) -> None:
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) = flags


FULL_FLOAT32 = (False, False, True, False)  # no TF32 in matmul or cuDNN, deterministic cuDNN, no autotuning


def test_full_float32_sets_the_flags_inside_and_gives_back_the_users_after():
    before = precision_flags()
    try:
        users = (True, True, False, True)  # a user's process that chose TF32 and cuDNN autotuning
        set_precision_flags(users)
        with pytest.raises(RuntimeError, match="inside"):
            with full_float32():
                assert precision_flags() == FULL_FLOAT32
                raise RuntimeError("inside")
        assert precision_flags() == users
    finally:
        set_precision_flags(before)


@pytest.mark.slow
def test_pal_run_trains_in_full_float32(tmp_path, monkeypatch):
    import pal.run.experiment

    seen = []

    def recording(*args, **kwargs):
        seen.append(precision_flags())
        return train_batched(*args, **kwargs)

    monkeypatch.setattr(pal.run.experiment, "train_batched", recording)
    before = precision_flags()
    assert main(["run", "drums", "--losses", "mse", "--iterations", "1", "--checkpoint-every", "1",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert seen == [FULL_FLOAT32]
    assert precision_flags() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_batched_training_on_cuda_matches_the_cpu():
    """On CUDA, ``pal run`` trains in full float32 (:func:`pal.run.config.full_float32`: TF32 off):
    the GPU's experiment is the CPU's up to float32 rounding."""
    targets = short_targets()
    on_cpu = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, TrainSettings(2, 2))
    with full_float32():
        on_gpu = train_batched(targets, MIXED_RUNS, SHORT_LOSSES, TrainSettings(2, 2, device="cuda"))
    for cpu_run, gpu_run in zip(on_cpu, on_gpu):
        # Bounds from float32 rounding, unit roundoff u = 2^-24 = 6e-8 (TF32's 10-bit mantissa,
        # u = 2^-11 = 4.9e-4, is what the flags rule out). The first loss is of the same untrained
        # weights on both devices, which only sum in different orders (convolutions, FFTs,
        # reductions over n ~ 1e5 terms: about u log2(n) = 1e-6 relative): bound 1e-5.
        assert gpu_run.losses[0] == pytest.approx(cpu_run.losses[0], rel=1e-5)
        # Adam with beta1 = 0 moves each weight by lr g / sqrt(v), lr sign(g) at the first update,
        # so a gradient's rounding changes its step in the same small proportion, except where g
        # is itself at rounding level and its sign flips: a 2 lr step for that one weight. The
        # first update moves all 130,848 weights of a generator by lr and its output by about half
        # its peak, some 4e-6 of the peak per weight, so a flip costs about 1e-5 of the peak.
        # Bound: 1e-3 of the peak, room for dozens of flips; float32 rounding alone (the CPU's
        # grouped against its looped stack) leaves 2e-6, and TF32 left 2.9e-2 (issue 21).
        np.testing.assert_allclose(gpu_run.losses, cpu_run.losses, rtol=1e-4)
        scale = np.abs(cpu_run.checkpoints[2]).max()
        assert np.abs(gpu_run.checkpoints[2] - cpu_run.checkpoints[2]).max() < 1e-3 * scale


class NanFromCall(torch.nn.Module):
    """MSE per item that turns NaN from its ``after``-th call on: a run that diverges on cue."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, input, target):
        self.calls += 1
        value = ((input - target) ** 2).flatten(1).mean(1)
        return value * float("nan") if self.calls > self.after else value


def test_a_run_that_diverges_has_a_typed_outcome_and_its_losses_stop_there():
    losses = {"mse": SHORT_LOSSES["mse"], "nan": NanFromCall(after=3)}
    runs = [RunSpec(0, "mse", 0), RunSpec(1, "nan", 0)]
    finished, diverged = train_batched(short_targets(), runs, losses, TrainSettings(6, 2))
    assert finished.outcome == Finished(6) and len(finished.losses) == 6
    assert diverged.outcome == Diverged(4, "loss became nan")
    assert diverged.outcome.describe() == "loss became nan at iteration 4"
    assert len(diverged.losses) == 4 and sorted(diverged.checkpoints) == [2]


def test_a_saved_failure_reads_back_in_both_state_formats():
    assert _saved_failure([3, 17, "gradient became non-finite"], 2) == Diverged(17, "gradient became non-finite")
    # format 1 (before typed outcomes) kept the text only
    assert _saved_failure([3, "loss became inf at iteration 250"], 1) == Diverged(250, "loss became inf")

"""Batched training without a host wait per iteration: which runs stopped is kept
on the device and read back every ``READ_EVERY`` iterations, yet a run that diverges between two
reads is recorded at its own iteration, with its reason, and its weights stay where they were."""

import numpy as np
import pytest
import torch

import pal.run.train as train
from pal.bench.opcount import OpCounter
from pal.run.train import Diverged, Finished, RunSpec, TrainHooks, TrainSettings, train_batched
from perceptual_audio_loss import build_loss

SAMPLE_RATE = 11025


def targets():
    t = torch.arange(8192) / SAMPLE_RATE
    return torch.stack([torch.sin(2 * np.pi * 220 * t), 0.5 * torch.sin(2 * np.pi * 330 * t)]).unsqueeze(1)


class PassGradient(torch.autograd.Function):
    """The identity, whose gradient is NaN from the ``after``-th call of its loss on."""

    @staticmethod
    def forward(ctx, x, poisoned):
        ctx.poisoned = poisoned
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return (grad * float("nan") if ctx.poisoned else grad), None


class BreaksAfter(torch.nn.Module):
    """MSE per item until its ``after``-th call, then: its value times ``factor`` (NaN or inf), or,
    with ``factor=None``, the true value with a NaN gradient. One run per instance, so a call is an
    iteration."""

    def __init__(self, after: int, factor: float | None):
        super().__init__()
        self.after, self.factor, self.calls = after, factor, 0

    def forward(self, input, target):
        self.calls += 1
        broken = self.calls > self.after
        if self.factor is None:
            input = PassGradient.apply(input, broken)
        value = ((input - target) ** 2).flatten(1).mean(1)
        return value * self.factor if broken and self.factor is not None else value


RUNS = [RunSpec(0, "mse", 0), RunSpec(1, "nan", 1), RunSpec(0, "inf", 2), RunSpec(1, "gradient", 3)]
STOPS = {1: Diverged(6, "loss became nan"), 2: Diverged(7, "loss became inf"),
         3: Diverged(6, "gradient became non-finite")}
LAST_LOSS = {1: np.isnan, 2: lambda value: value == np.inf, 3: np.isfinite}  # at the iteration it stopped


def breaking_losses():
    return {"mse": build_loss("mse", SAMPLE_RATE), "nan": BreaksAfter(5, float("nan")),
            "inf": BreaksAfter(6, float("inf")), "gradient": BreaksAfter(5, None)}


@pytest.fixture
def reads_every_four(monkeypatch):
    """Reads of the runs' health every 4 iterations, and a count of them."""
    monkeypatch.setattr(train, "READ_EVERY", 4)
    reads = []
    original = train.RunHealth.failures
    monkeypatch.setattr(train.RunHealth, "failures", staticmethod(lambda *a: reads.append(1) or original(*a)))
    return reads


def test_a_run_diverging_between_reads_keeps_its_iteration_reason_and_weights(reads_every_four):
    final = {}
    results = train_batched(targets(), RUNS, breaking_losses(), TrainSettings(10, 10, stack_mode="looped"),
                            TrainHooks(on_checkpoint=lambda i, audio, running: final.update(audio=audio,
                                                                                           running=running)))
    assert len(reads_every_four) == 3  # at 4, 8 and 10: the failures at 6 and 7 fall between reads
    assert results[0].outcome == Finished(10) and len(results[0].losses) == 10
    assert final["running"] == [True, False, False, False]
    for index, stop in STOPS.items():
        result = results[index]
        assert result.outcome == stop
        assert len(result.losses) == stop.iteration and all(np.isfinite(result.losses[:-1]))
        assert LAST_LOSS[index](result.losses[-1])
        assert result.checkpoints == {}
        # Its output at the end is its output after the updates before it stopped, bit for bit:
        # the same run trained alone for that many iterations (its loss still healthy then).
        done = stop.iteration - 1
        alone = train_batched(targets(), [RUNS[index]], breaking_losses(),
                              TrainSettings(done, done, stack_mode="looped"))[0]
        assert alone.outcome == Finished(done)
        np.testing.assert_array_equal(final["audio"][index], alone.checkpoints[done])


def test_a_stopped_run_stays_put_with_momentum_too(reads_every_four):
    # With beta1 > 0 Adam's momentum would carry a stopped run's weights on; it is zeroed as well.
    runs = [RunSpec(0, "mse", 0), RunSpec(1, "nan", 1)]
    final = {}
    results = train_batched(targets(), runs, breaking_losses(), TrainSettings(9, 9, stack_mode="looped", betas=(0.5, 0.9)),
                            TrainHooks(on_checkpoint=lambda i, audio, running: final.update(audio=audio)))
    assert results[1].outcome == Diverged(6, "loss became nan")
    alone = train_batched(targets(), runs[1:], breaking_losses(),
                          TrainSettings(5, 5, stack_mode="looped", betas=(0.5, 0.9)))[0]
    np.testing.assert_array_equal(final["audio"][1], alone.checkpoints[5])


def test_a_saved_state_holds_failures_found_since_the_last_read(reads_every_four):
    saved = []
    train_batched(targets(), RUNS, breaking_losses(), TrainSettings(7, 7, stack_mode="looped"),
                  TrainHooks(on_save=saved.append))
    assert [state["iteration"] for state in saved] == [7]
    assert saved[0]["failures"] == [[index, stop.iteration, stop.reason] for index, stop in STOPS.items()]


# Operations that make the host wait for the device: reading a value (item, bool, float) or
# sizing a result by the data (a boolean mask's nonzero).
WAITING_OPS = ("aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.nonzero", "aten.masked_select")


def iteration_ops(**options) -> dict:
    """The operations of the third iteration of a 2-run MSE training (the first builds Adam's state)."""
    counts = {}
    runs = [RunSpec(0, "mse", 0), RunSpec(1, "mse", 1)]
    with OpCounter() as counter:
        train_batched(targets(), runs, {"mse": build_loss("mse", SAMPLE_RATE)}, TrainSettings(3, 3, **options),
                      TrainHooks(on_progress=lambda i, _: counts.__setitem__(i, dict(counter.by_name))))
    return {name: counts[3].get(name, 0) - counts[2].get(name, 0) for name in counts[3]}


def test_an_iteration_on_the_cuda_path_never_waits_for_the_device():
    ops = iteration_ops(stack_mode="grouped", fused_adam=True)
    waiting = {name: n for name, n in ops.items() if n and name.startswith(WAITING_OPS)}
    assert waiting == {}
    # Fused Adam: one update for every weight (and one increment of the steps), not a few per weight.
    assert ops["aten._fused_adam_.default"] == 1 and ops.get("aten.lerp_.Scalar", 0) == 0
    # The counter does see a wait where there is one: torch's per-weight Adam reads each step count.
    assert iteration_ops(stack_mode="grouped", fused_adam=False)["aten._local_scalar_dense.default"] == 7


def test_fused_adam_is_chosen_on_cuda_only():
    weight = torch.nn.Parameter(torch.zeros(3))
    assert not train._adam([weight], None, None).defaults["fused"]
    assert train._adam([weight], None, None, fused=True).defaults["fused"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_fused_adam_on_cuda_and_its_state_resumes():
    weight = torch.nn.Parameter(torch.zeros(3, device="cuda"))
    assert train._adam([weight], None, None).defaults["fused"]
    saved = []
    runs = [RunSpec(0, "mse", 0)]
    straight = train_batched(targets(), runs, breaking_losses(), TrainSettings(4, 2, device="cuda"),
                             TrainHooks(on_save=saved.append))
    state = saved[0]  # iteration 2, on the host as a run folder keeps it
    assert state["iteration"] == 2 and all(not t.is_cuda for t in state["weights"])
    resumed = train_batched(targets(), runs, breaking_losses(), TrainSettings(4, 2, device="cuda"), resume=state)
    assert resumed[0].losses == straight[0].losses
    np.testing.assert_array_equal(resumed[0].checkpoints[4], straight[0].checkpoints[4])

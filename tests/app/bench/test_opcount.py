"""The operation counter against hand counts, and ``pal bench --ops``.

The hand counts follow from torch's autograd formulas: the backward of ``x.sum()`` is
``grad.expand(x.shape)``, of ``x * 3`` is ``grad * 3``; backward starts from ``ones_like`` of the
result, and a leaf's gradient is stored detached."""

import json
from collections import Counter

import pytest
import torch

from pal.bench import cli, common, ops
from pal.bench.opcount import OpCounter, count_ops, forward_backward_ops
from pal.run.train import RunSpec, TrainHooks, TrainSettings, train_batched
from perceptual_audio_loss import build_loss


def test_a_forward_is_counted_op_by_op():
    x = torch.ones(4, 3)
    counted = count_ops(lambda: (x.t().reshape(-1) * 2 + 1).sum())
    # t: a view; reshape of a non-contiguous view: a copy (clone) then a view of it; mul; add; sum.
    assert counted.by_name == Counter({"aten.t.default": 1, "aten.clone.default": 1, "aten._unsafe_view.default": 1,
                                       "aten.mul.Tensor": 1, "aten.add.Tensor": 1, "aten.sum.default": 1})
    assert counted.total == 6 and counted.views == 2 and counted.computing == 4  # t, _unsafe_view


def test_a_backward_is_counted_too():
    x = torch.ones(3, requires_grad=True)
    counted = count_ops(lambda: (x * 3).sum().backward())
    assert counted.by_name == Counter({"aten.mul.Tensor": 2, "aten.sum.default": 1, "aten.ones_like.default": 1,
                                       "aten.expand.default": 1, "aten.detach.default": 1})
    assert counted.views == 2  # expand and detach


def test_a_loss_call_is_counted_once_after_a_warm_up():
    x, y = torch.randn(2, 1, 64), torch.randn(2, 1, 64)
    counted = forward_backward_ops(torch.nn.MSELoss(), x, y)
    assert counted.by_name == Counter({"aten.mse_loss.default": 1, "aten.ones_like.default": 1,
                                       "aten.mse_loss_backward.default": 1, "aten.detach.default": 1})


def test_profiler_markers_are_not_operations():
    x = torch.ones(3)
    with OpCounter() as counter, torch.profiler.record_function("a marker"):
        x + 1
    assert counter.by_name == Counter({"aten.add.Tensor": 1})


def test_the_cuda_path_of_the_blend_has_no_compiled_kernels():
    from perceptual_audio_loss import PerceptualLoss

    blend = ops.ops_loss("masked+perceptual", 11025)
    parts = [m for m in blend.modules() if isinstance(m, PerceptualLoss)]
    assert parts and all(part.compiled is False for part in parts)


def test_the_iteration_count_is_one_iteration_of_train_batched():
    """Counted another way: a 3-iteration training less a 2-iteration one (each ends with the same
    checkpoint and read) is the third iteration."""
    runs = [RunSpec(0, "mse", 0)]
    targets = common.post_targets(("drums",))

    def training(iterations):
        loss = {"mse": build_loss("mse", common.SAMPLE_RATE)}
        return lambda: train_batched(targets, runs, loss,
                                     TrainSettings(iterations, iterations, stack_mode="grouped", fused_adam=True),
                                     TrainHooks(on_progress=lambda *_: None))  # as pal run passes one

    difference = count_ops(training(3)).total - count_ops(training(2)).total
    counted = ops.training_iteration_ops(("drums",), ("mse",))
    assert counted["runs"] == 1 and counted["ops"] == difference


def test_bench_ops_prints_and_writes_the_counts(tmp_path, capsys):
    out = tmp_path / "ops.json"
    assert cli.main(["--ops", "--quick", "--losses", "mse,l1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schema"] == ops.OPS_SCHEMA and report["device"] == "cpu" and report["per_iteration"] is None
    calls = {(c["loss"], c["batch"]): c for c in report["per_call"]}
    assert set(calls) == {("mse", 1), ("l1", 1)}
    assert calls["mse", 1]["ops"] == 4 and calls["mse", 1]["views"] == 1  # the hand count above
    printed = capsys.readouterr().out
    assert "mse" in printed and "l1" in printed and f"wrote {out}" in printed


def test_an_unknown_loss_for_ops_is_one_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--ops", "--losses", "mse,nope"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "nope" in err and "Traceback" not in err

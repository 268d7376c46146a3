"""A user's loss is guarded for the whole run, not only at the probe.

The cases are generated: a loss file that misbehaves in one way (raises, calls ``sys.exit(0)`` or
``sys.exit(3)``, switches grad mode off, moves the working folder, returns a wrong shape, dtype,
a non-tensor or a detached value) at one place (import, construction, the probe, iteration 3 of
``forward``, its backward, ``target_features``, ``against`` at iteration 3), each through a real
``pal run``. Every one must end with exit 2, one line on stderr naming the loss and where (the
iteration, where there is one), no traceback, the working folder unchanged; once training has
begun, ``runs.json`` says the loss's runs failed there and the checkpoint and state saved at
iteration 2 are intact. Before training, no folder is left. A loss that returns NaN is not an
error: the run diverges, as any loss's would (exit 3).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch

from pal.cli import main

PAL = str(Path(sys.executable).with_name("pal"))

TEMPLATE = '''
import os, sys, tempfile
import torch
from torch import nn

PLACE, ACTION = {place!r}, {action!r}


def misbehave():
    """What ACTION does to the process (the actions that return something are in value())."""
    if ACTION == "raise":
        raise RuntimeError("boom")
    if ACTION == "exit0":
        sys.exit(0)
    if ACTION == "exit3":
        sys.exit(3)
    if ACTION == "interrupt":
        raise KeyboardInterrupt
    if ACTION == "grad-off":
        torch.set_grad_enabled(False)
    if ACTION == "chdir":
        os.chdir(tempfile.gettempdir())


if PLACE == "import":
    misbehave()


class Backward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        misbehave()
        return grad


class Loss(nn.Module):
    """Mean squared error, per item where asked; call 1 is the probe, call n + 1 iteration n."""

    def __init__(self, sample_rate):
        super().__init__()
        self.calls = 0
        if PLACE == "build":
            misbehave()

    def value(self, x, y, per_item, place):
        self.calls += 1
        now = (PLACE == "probe" and self.calls == 1) or (PLACE in (place, "backward") and self.calls == 4)
        if now and PLACE != "backward":
            misbehave()
            if ACTION == "shape":
                return (x - y).abs()
            if ACTION == "dtype":
                return ((x - y) ** 2).mean().double()
            if ACTION == "not-tensor":
                return 0.5
            if ACTION == "detached":
                return ((x - y) ** 2).mean().detach()
            if ACTION == "nan":
                return ((x - y) ** 2).mean() * float("nan")
        if now:
            x = Backward.apply(x)
        squared = ((x - y) ** 2).reshape(x.shape[0], -1).mean(1)
        return squared if per_item else squared.mean()

    def forward(self, x, y):
        return self.value(x, y, False, "iteration")


class Prepared(Loss):
    """The same loss with its targets prepared once (PreparedTargetLoss)."""

    def target_features(self, target):
        if PLACE == "target_features":
            misbehave()
        return target.clone()

    def against(self, x, prepared, reduction=None):
        return self.value(x, prepared, reduction == "none", "against")
'''

RAISING = ["raise", "exit0", "exit3"]
PLACES = {  # where, and what the line says about it
    "import": "on import of", "build": "when built", "probe": "on a noise pair", "iteration": "at iteration 3",
    "backward": "in its backward at iteration 3", "target_features": "preparing its targets",
    "against": "at iteration 3",
}
TRAINING = {"iteration", "backward", "target_features", "against"}
STATE = {"grad-off": "switched grad mode off", "chdir": "changed the working folder"}
RETURNS = {"shape": "shape (1, 1, 8192) for", "dtype": "torch.float64 for torch.float32 input",
           "not-tensor": "a float, not a tensor", "detached": "not connected to its input"}
SAID = {"raise": "raised RuntimeError", "exit0": "called sys.exit(0)", "exit3": "called sys.exit(3)"} | STATE | RETURNS


def case(place: str, action: str):
    """One case; those that train are slow, but for sys.exit(0) in forward, the issue's own example."""
    slow = place in TRAINING and (action, place) != ("exit0", "iteration")
    return pytest.param(place, action, id=f"{action}-at-{place}", marks=[pytest.mark.slow] if slow else [])


CASES = ([case(place, action) for place in PLACES for action in RAISING]
         + [case(place, action) for place in ("probe", "iteration", "against") for action in STATE]
         + [case(place, action) for place in ("probe", "iteration") for action in RETURNS]
         + [case("against", "shape")])


def loss_file(folder: Path, place: str, action: str) -> Path:
    path = folder / "losses" / f"bad_{action.replace('-', '_')}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(TEMPLATE.format(place=place, action=action))
    return path


def pal_run(path: Path, place: str, out: Path) -> int:
    attribute = "Prepared" if place in ("target_features", "against") else "Loss"
    return main(["run", "drums", "--losses", f"mse,{path}:{attribute}", "--iterations", "5", "--checkpoint-every", "2",
                 "--out", str(out), "--no-progress"])


@pytest.mark.parametrize("place, action", CASES)
def test_a_misbehaving_users_loss_is_one_line_exit_2_and_recorded(tmp_path, capsys, place, action):
    path = loss_file(tmp_path, place, action)
    label = f"{path.name}:{'Prepared' if place in ('target_features', 'against') else 'Loss'}"
    out, cwd, grad = tmp_path / "run", os.getcwd(), torch.is_grad_enabled()
    assert pal_run(path, place, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"loss {label!r}" in err and SAID[action] in err and PLACES[place] in err, err
    assert os.getcwd() == cwd and torch.is_grad_enabled() == grad
    if place not in TRAINING:
        assert not out.exists()
        return
    runs = {run["loss"]: run for run in json.loads((out / "runs.json").read_text())}
    failed = runs[label]
    assert failed["status"] == "failed" and SAID[action] in failed["reason"]
    assert failed["stopped_at"] == (None if place == "target_features" else 3)
    assert runs["mse"]["status"] == "running"  # interrupted: the same command resumes it
    if place != "target_features":  # what was saved at iteration 2 is whole
        for loss in ("mse", label):
            samples, _ = soundfile.read(str(out / "clips" / "drums" / loss / "seed-0" / "iter-0002.wav"))
            assert samples.size == 8192
        assert failed["checkpoints"] == [2]
        assert torch.load(out / "state.pt", weights_only=True)["iteration"] == 2


@pytest.mark.slow
def test_a_loss_that_returns_nan_diverges_as_any_loss_does(tmp_path, capsys):
    path = loss_file(tmp_path, "iteration", "nan")
    assert pal_run(path, "iteration", tmp_path / "run") == 3
    runs = {run["loss"]: run for run in json.loads((tmp_path / "run" / "runs.json").read_text())}
    assert runs[f"{path.name}:Loss"]["reason"] == "loss became nan at iteration 3"
    assert runs["mse"]["status"] == "finished"


@pytest.mark.slow
def test_a_keyboard_interrupt_from_a_loss_is_a_ctrl_c(tmp_path, capsys):
    """Decided: KeyboardInterrupt is how a real Ctrl-C arrives, mostly inside the loss; the run is
    interrupted as by Ctrl-C (exit 130, resumable), never called failed."""
    path = loss_file(tmp_path, "iteration", "interrupt")
    assert pal_run(path, "iteration", tmp_path / "run") == 130
    assert capsys.readouterr().err.strip().endswith("pal: interrupted")
    assert {run["status"] for run in json.loads((tmp_path / "run" / "runs.json").read_text())} == {"running"}


@pytest.mark.slow
@pytest.mark.parametrize("place", ["probe", "iteration"])
def test_sys_exit_0_never_ends_the_pal_process_with_success(tmp_path, place):
    path = loss_file(tmp_path, place, "exit0")
    result = subprocess.run([PAL, "run", "drums", "--losses", f"{path}:Loss", "--iterations", "5",
                             "--checkpoint-every", "2", "--out", str(tmp_path / "run"), "--no-progress"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "called sys.exit(0)" in result.stderr


def test_a_loss_module_that_exits_on_import_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "exiting.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "drums", "--losses", "exiting:L", "--iterations", "2", "--checkpoint-every", "2",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "loss 'exiting:L' called sys.exit(0) on import of exiting" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_the_guard_does_not_change_the_numbers(tmp_path):
    """The guarded loss gives the value and gradient of the loss itself, bit for bit."""
    from pal.losses.guard import guarded

    namespace = {}
    exec(compile(TEMPLATE.format(place="", action=""), "loss", "exec"), namespace)
    x = torch.randn(3, 1, 64, requires_grad=True)
    y = torch.randn(3, 1, 64)
    for reduction in (None, "none"):
        plain, guard = namespace["Prepared"](11025), guarded(namespace["Prepared"](11025), "l")
        grads = []
        for loss in (plain, guard):
            value = loss.against(x, loss.target_features(y), reduction=reduction)
            grads.append((value, torch.autograd.grad(value.sum(), x)[0]))
        assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])

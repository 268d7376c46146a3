"""Options that would exhaust the machine are refused before anything is built.

The cases are generated from :data:`pal.losses.registry.REGISTERED`: for every registered loss whose
size depends on its options, and every such option, the first power-of-ten multiple (or fraction) of
its default that the estimate puts over the budget. Each goes through ``pal run`` with the loss's
factory replaced by one that fails the test if called, so the refusal provably comes before any
allocation: exit 2, one line naming the option, no folder. The defaults must fit at every rate.
"""

import inspect
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import pal.sweeps.executors
from pal.losses.budget import WORKING_SET_BUDGET, check_working_set
from pal.cli import main
from pal.run.config import SAMPLE_RATES
from pal.core.errors import UserError
from pal.losses.registry import REGISTERED, registered_names
from pal.losses.specs import parse_loss_spec
from perceptual_audio_loss import LOSSES

SIZED = {name: loss.memory for name, loss in REGISTERED.items() if loss.memory.reads}

WINDOW = 8192
RATE = 11025


def defaults(name: str) -> dict:
    factory = {"perceptual-mse": "perceptual"}.get(name, name)
    from perceptual_audio_loss import AuditorySpectrogramLoss, MaskedLoss, PerceptualLoss

    cls = {"perceptual": PerceptualLoss, "masked": MaskedLoss, "auditory": AuditorySpectrogramLoss}[factory]
    return {key: p.default for key, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}


def too_large(name: str, option: str):
    """The first value 10^k times (or 10^-k of) the option's default that the estimate refuses."""
    estimate = SIZED[name].estimate
    default = defaults(name)[option]
    if not isinstance(default, (int, float)) or isinstance(default, bool):
        return None  # a tuple (windows_s): not a spec's value
    for power in range(1, 13):
        for value in (default * 10**power, default / 10**power):
            value = int(value) if isinstance(default, int) else float(f"{value:.3g}")
            needed = estimate({option: value}, RATE, WINDOW) if value > 0 else None
            if needed is not None and needed > WORKING_SET_BUDGET:
                return value
    return None  # an option that cannot blow the budget alone (stride only shrinks the work)


CASES = [pytest.param(name, option, value, id=f"{name}:{option}={value}")
         for name, memory in SIZED.items() for option in memory.reads
         if (value := too_large(name, option)) is not None]


def test_the_generated_cases_cover_bands_taps_band_width_and_spans():
    assert {(case.values[0], case.values[1]) for case in CASES} >= {
        ("perceptual", "n_bands"), ("perceptual", "taps"), ("masked", "band_width_bark"), ("masked", "backward_s")}


@pytest.fixture
def factories_that_must_not_run(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the loss was built before its options were bounded")

    for name in SIZED:
        monkeypatch.setitem(LOSSES, name, never)


@pytest.mark.parametrize("name, option, value", CASES)
def test_an_option_too_large_is_refused_before_anything_is_built(tmp_path, capsys, factories_that_must_not_run,
                                                                 name, option, value):
    spec = f"{name}:{option}={value}"
    out = tmp_path / "run"
    assert main(["run", "drums", "--losses", f"mse,{spec}", "--iterations", "2", "--checkpoint-every", "2",
                 "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"loss {spec!r}: {option}={value} would need about" in err
    assert not out.exists()


def test_a_sweep_refuses_it_at_once_too(tmp_path, capsys, factories_that_must_not_run):
    soundfile.write(str(tmp_path / "tone.wav"), 0.5 * np.sin(np.arange(3 * RATE) / 10.0), RATE)
    out = tmp_path / "sweep"
    assert main(["sweep", str(tmp_path / "tone.wav"), "--losses", "perceptual:n_bands=10000000", "--out", str(out),
                 "--iterations", "2", "--checkpoint-every", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "n_bands=10000000 would need about" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("rate", [SAMPLE_RATES.low, RATE, SAMPLE_RATES.high])
@pytest.mark.parametrize("name", registered_names())
def test_every_registered_loss_with_its_defaults_fits_at_every_rate(name, rate):
    check_working_set(name, REGISTERED[name].memory, {}, rate, WINDOW)


def test_the_estimates_read_options_the_losses_take():
    for name, memory in SIZED.items():
        assert set(memory.reads) <= set(defaults(name)), name
    assert all(not loss.peer for loss in REGISTERED.values() if loss.memory.reads)  # a peer takes no options


def test_the_refusal_names_the_options_given():
    with pytest.raises(UserError, match=r"^loss 'p': n_bands=100000 and taps=60000 would need about [\d.]+ GB"):
        check_working_set("p", REGISTERED["perceptual"].memory, {"n_bands": 100000, "taps": 60000}, RATE, WINDOW)


@pytest.mark.parametrize("spec, named", [("perceptual:stride=2.5", "stride"), ("perceptual:taps=abc", "taps"),
                                         ("masked:windows_s=10", "windows_s"), ("perceptual:n_bands=0", "n_bands")])
def test_the_librarys_refusal_is_one_line_naming_the_loss_and_option(tmp_path, capsys, spec, named):
    assert main(["run", "drums", "--losses", spec, "--iterations", "2", "--checkpoint-every", "2",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pal: error: loss {spec!r}: ") and named in err and err.count("\n") == 1


# The resident high-water mark of the measuring process itself (/proc's VmHWM): getrusage's
# ru_maxrss carries the parent's peak across fork and exec, so under a large pytest process it read
# no growth at all.
MEASURE = """
import json, sys, torch
from pal.losses.registry import DecodingLoss
from pal.losses.specs import build_loss, parse_loss_spec
def high_water():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
torch.set_num_threads(1)
spec = parse_loss_spec(sys.argv[1])
loss = build_loss(spec, {rate})
channels = loss.output_channels if isinstance(loss, DecodingLoss) else 1
x, y = torch.randn(1, channels, {window}, requires_grad=True), 0.3 * torch.randn(1, 1, {window})
before = high_water()
loss(x, y).backward()
print(high_water() - before)
"""

MEASURED = [(name, ":".join(f"{k}={v}" for k, v in options.items()))
            for name, options in [("perceptual", {"n_bands": 2048, "taps": 1024}), ("perceptual", {"compiled": False}),
                                  ("perceptual", {"n_bands": 2048, "taps": 1024, "compiled": False}),
                                  ("masked", {"band_width_bark": 0.1}), ("auditory", {"bands_per_erb": 8})]]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc to read the peak")
@pytest.mark.parametrize("name, options", [(name, "") for name in registered_names()] + MEASURED)
def test_the_estimate_covers_the_measured_peak(name, options):
    """Every registered loss's estimate against the process's own peak memory growth over one
    forward and backward: never below it, and not more than 8 times it (or 16 MiB)."""
    spec = f"{name}:{options}" if options else name
    result = subprocess.run([sys.executable, "-c", MEASURE.format(rate=RATE, window=WINDOW), spec],
                            capture_output=True, text=True, check=True, timeout=300)
    measured = int(result.stdout.strip())
    estimate = REGISTERED[name].memory.estimate(parse_loss_spec(spec).options, RATE, WINDOW)
    assert measured <= estimate <= 8 * max(measured, 2**24)


def unused_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_ray_address_is_one_line_after_one_bounded_attempt(tmp_path, capsys, monkeypatch):
    attempts = []
    real = socket.create_connection

    def spy(address, timeout=None, **kwargs):
        attempts.append((address, timeout))
        return real(address, timeout=timeout, **kwargs)

    monkeypatch.setattr(pal.sweeps.executors.socket, "create_connection", spy)
    soundfile.write(str(tmp_path / "tone.wav"), 0.5 * np.sin(np.arange(3 * RATE) / 10.0), RATE)
    port = unused_loopback_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        out = tmp_path / "sweep"
        assert main(["sweep", str(tmp_path / "tone.wav"), "--executor", "ray", "--address", address, "--out", str(out),
                     "--iterations", "2", "--checkpoint-every", "2", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err == f"pal: error: cannot reach Ray at {address}: Connection refused (waited up to 5 s); is the " \
                      "cluster up and the address right?\n"
        assert not out.exists()
    assert attempts == [(("127.0.0.1", port), pal.sweeps.executors.CONNECT_TIMEOUT_S)] * 2
    assert pal.sweeps.executors.CONNECT_TIMEOUT_S <= 5


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "ray://:80", "127.0.0.1:port"])
def test_an_address_that_is_not_one_is_named(address):
    with pytest.raises(UserError, match="is not host:port"):
        pal.sweeps.executors.check_ray_address(address)

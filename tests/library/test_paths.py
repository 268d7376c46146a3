"""PerceptualLoss's paths: the table in :func:`choose_path`'s docstring, row by row.

The table is read from the docstring itself, so the documentation and the dispatch cannot part:
every combination of the conditions gets the path of the first row that matches it, every row
is the first match of some combination, the kernels are asked about only where the table's row
depends on them, and a call on each row's conditions runs that path's code (spied upon; the rows
of other devices only where such a device exists, since :func:`choose_path` itself needs none).
``MaskedLoss`` and ``AuditorySpectrogramLoss`` have one path each (their docstrings say so).
"""

import itertools

import pytest
import torch

from perceptual_audio_loss import PerceptualLoss, _batched, _compiled, _native
from perceptual_audio_loss.perceptual import Path, choose_path

RATE = 11025
# Every value each condition takes; "not cpu" stands for cuda and mps.
VALUES = {
    "method": ["direct", "fft"],
    "target": ["fixed", "learnable"],
    "device": ["cpu", "cuda", "mps"],
    "dtype": ["float32", "float64"],
    "compiled": ["True", "False"],
    "kernels": ["built", "absent"],
}


def table_rows():
    """The rows of the table in choose_path's docstring: ``({condition: cell}, Path)``."""
    lines = [line.strip() for line in choose_path.__doc__.splitlines() if line.strip().startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == [*VALUES, "path"] and set(lines[1]) <= {"|", "-"}
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append((dict(zip(VALUES, cells[:-1])), Path[cells[-1].strip("`")]))
    return rows


ROWS = table_rows()


def matches(cell: str, value: str) -> bool:
    if cell == "any":
        return True
    if cell.startswith("not "):
        return value != cell[len("not "):]
    return cell == value


def first_match(combination: dict) -> int:
    return next(i for i, (conditions, _) in enumerate(ROWS)
                if all(matches(conditions[name], combination[name]) for name in VALUES))


def combinations():
    return [dict(zip(VALUES, values)) for values in itertools.product(*VALUES.values())]


def ask(combination: dict, kernels_available=None) -> Path:
    if kernels_available is None:
        kernels_available = lambda: combination["kernels"] == "built"  # noqa: E731
    return choose_path(combination["method"], combination["compiled"] == "True", combination["device"],
                       getattr(torch, combination["dtype"]), combination["target"] == "fixed", kernels_available)


def example(index: int) -> dict:
    """A combination that row ``index`` is the first match of."""
    return next(c for c in combinations() if first_match(c) == index)


def test_the_table_holds_every_path_and_no_dead_row():
    assert {path for _, path in ROWS} == set(Path)
    assert {first_match(c) for c in combinations()} == set(range(len(ROWS)))


@pytest.mark.parametrize("combination", combinations(), ids=lambda c: "-".join(c.values()))
def test_every_combination_takes_the_path_of_its_first_row(combination):
    assert ask(combination) is ROWS[first_match(combination)][1]


def refuse():
    raise AssertionError("the kernels were asked about where the row does not depend on them")


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[path.name for _, path in ROWS])
def test_each_row_chooses_its_path_and_asks_for_the_kernels_only_where_it_depends_on_them(index):
    conditions, path = ROWS[index]
    combination = example(index)
    asked = ask(combination, kernels_available=None if conditions["kernels"] != "any" else refuse)
    assert asked is path


# -- a call on each row's conditions runs that path's code ---------------------------------------

# What each path runs, by its own entry points (an independent statement of the paths).
ENTRIES = {
    Path.DIRECT: {"conv1d"},
    Path.FFT: {"batched features"},
    Path.BATCHED: {"batched features", "batched distance"},
    Path.COMPILED: {"compiled features", "compiled distance"},
}


@pytest.fixture
def called(monkeypatch):
    """The set of entry points that ran, spied upon without changing what they compute."""
    seen = set()

    def spy(name, function):
        def spied(*args, **kwargs):
            seen.add(name)
            return function(*args, **kwargs)
        return spied

    monkeypatch.setattr(torch.nn.functional, "conv1d", spy("conv1d", torch.nn.functional.conv1d))
    monkeypatch.setattr(_batched, "features", spy("batched features", _batched.features))
    monkeypatch.setattr(_batched.BatchedDistance, "apply", spy("batched distance", _batched.BatchedDistance.apply))
    monkeypatch.setattr(_compiled, "features", spy("compiled features", _compiled.features))
    monkeypatch.setattr(_compiled.CompiledDistance, "apply",
                        spy("compiled distance", _compiled.CompiledDistance.apply))
    return seen


def available_device(combination: dict) -> str:
    device = combination["device"]
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine (choose_path's row is checked above)")
    if device == "mps" and not torch.backends.mps.is_available():
        pytest.skip("no MPS device on this machine (choose_path's row is checked above)")
    return device


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[path.name for _, path in ROWS])
def test_a_call_on_each_row_runs_that_path(index, monkeypatch, called):
    conditions, path = ROWS[index]
    combination = example(index)
    device = available_device(combination)
    if combination["kernels"] == "absent":
        monkeypatch.setattr(_native, "native_kernels", lambda: None)
    elif conditions["kernels"] == "built" and _native.native_kernels() is None:
        pytest.skip("no C compiler: the compiled kernels are not built")
    loss = PerceptualLoss(RATE, n_bands=8, taps=64, method=combination["method"],
                          compiled=combination["compiled"] == "True").to(device)
    dtype = getattr(torch, combination["dtype"])
    x = torch.randn(2, 300, dtype=dtype, device=device, requires_grad=True)
    target = torch.randn(2, 300, dtype=dtype, device=device, requires_grad=combination["target"] == "learnable")
    assert loss.path_for(x, fixed_target=combination["target"] == "fixed") is path
    loss(x, target).backward()
    assert called == ENTRIES[path]


def test_half_precision_input_takes_the_path_of_float32(monkeypatch):
    """float16 and bfloat16 are computed in float32 (the contract), so they take its path."""
    monkeypatch.setattr(_native, "native_kernels", lambda: object())
    loss = PerceptualLoss(RATE, n_bands=8, taps=64)
    for dtype in (torch.float16, torch.bfloat16):
        assert loss.path_for(torch.zeros(1, 100, dtype=dtype)) is Path.COMPILED

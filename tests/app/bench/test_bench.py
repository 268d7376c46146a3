"""``pal bench``'s parts that can be checked without a clock: the DAC-style mel loss against a hand
computation, the cost matrix's JSON schema, and what happens without CUDA or without zounds."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pal.bench import cli, common, matrix, ops, zounds
from pal.losses.mel import DAC_MEL_BANDS, DAC_WINDOW_LENGTHS, MultiScaleMelLoss, hz_to_mel, mel_basis

REPO = Path(__file__).resolve().parents[3]


def hand_log_mel(signal: np.ndarray, rate: float, length: int, bands: int, clamp: float) -> np.ndarray:
    """``log10(max(clamp, mel @ |STFT|))`` written out in numpy: reflect padding, periodic Hann,
    hop of a quarter window, one frame at a time."""
    hop = length // 4
    padded = np.pad(signal, length // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)
    frames = [padded[i : i + length] * window for i in range(0, len(padded) - length + 1, hop)]
    magnitude = np.abs(np.fft.rfft(np.stack(frames), axis=1)).T
    return np.log10(np.maximum(clamp, mel_basis(rate, length, bands) @ magnitude))


def test_mel_loss_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(3000), 0.5 * rng.standard_normal(3000)
    expected = sum(np.abs(hand_log_mel(x, 16000, n, m, 1e-5) - hand_log_mel(y, 16000, n, m, 1e-5)).mean()
                   for n, m in zip(DAC_WINDOW_LENGTHS, DAC_MEL_BANDS))
    got = MultiScaleMelLoss(16000)(torch.from_numpy(x)[None, None].float(), torch.from_numpy(y)[None, None].float())
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_mel_loss_is_zero_for_identical_signals_and_log10_2_for_a_doubled_one():
    x = torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(1))
    # One scale whose every mel triangle covers a bin, so every mel magnitude of white noise is far
    # above the clamp: doubling the signal doubles each one and adds log10(2) to each log.
    loss = MultiScaleMelLoss(16000, window_lengths=(256,), n_mels=(40,))
    assert (mel_basis(16000, 256, 40).sum(axis=1) > 0).all()
    assert loss(x, x).item() == 0.0
    assert loss(2 * x, x).item() == pytest.approx(math.log10(2), rel=1e-5)


def test_slaney_mel_scale_at_published_points():
    # Slaney (1998): 200/3 Hz per mel below 1 kHz, so 1 kHz is mel 15; 6.4x per 27 mels above.
    assert hz_to_mel(np.array([0.0, 1000.0, 6400.0])) == pytest.approx([0.0, 15.0, 42.0])


def test_mel_basis_triangles_have_unit_area():
    rate, n_fft = 16000, 4096
    basis = mel_basis(rate, n_fft, 20)
    bin_hz = rate / n_fft
    assert basis.sum(axis=1) * bin_hz == pytest.approx(np.ones(20), rel=0.02)


@pytest.mark.slow
def test_matrix_json_schema_on_a_tiny_grid(tmp_path):
    out = tmp_path / "matrix.json"
    assert cli.main(["--matrix", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schema"] == matrix.MATRIX_SCHEMA
    assert report["device"] == "cpu" and report["threads"] >= 1 and report["repeats"] == 1
    assert set(report["losses"]) == set(matrix.QUICK["losses"])
    assert len(report["cells"]) == len(matrix.QUICK["losses"])
    for cell in report["cells"]:
        assert cell["skipped"] is None
        assert cell["samples"] == round(cell["sample_rate"] * cell["seconds"])
        assert math.isfinite(cell["ms"]) and cell["ms"] > 0
        assert math.isfinite(cell["peak_mib"]) and cell["peak_mib"] >= 0
        assert cell["memory_measure"] == "peak RSS increase"
    # The operation counts beside it: the quick grid's losses at batch 1, no training iteration.
    assert report["ops"]["schema"] == ops.OPS_SCHEMA and report["ops"]["per_iteration"] is None
    assert {(c["loss"], c["batch"]) for c in report["ops"]["per_call"]} == {(name, 1) for name in matrix.QUICK["losses"]}


def test_cpu_grid_skips_only_the_oversized_perceptual_cells():
    grid = matrix.matrix_grid("cpu", False, None, None, None, None)
    skipped = {(c["loss"], c["sample_rate"], c["seconds"], c["batch"]) for c in grid
               if matrix.cpu_skip_reason(c["loss"], round(c["sample_rate"] * c["seconds"]), c["batch"])}
    assert skipped and {name for name, *_ in skipped} == {"perceptual"}
    assert ("perceptual", 11025, 1.0, 1) not in skipped
    full = matrix.matrix_grid("cuda", False, None, None, None, None)
    assert len(full) == len(matrix.MATRIX_LOSSES) * 4 * 3 * 2


def test_missing_zounds_venv_says_how_to_build_it(tmp_path):
    assert zounds.zounds_python(tmp_path / "nowhere") is None
    assert "make zounds-venv" in zounds.MISSING_ZOUNDS.format(venv=tmp_path / "nowhere")


@pytest.mark.slow
def test_gpu_check_without_cuda_says_so_in_one_line():
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
    finished = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu-check")], capture_output=True, text=True,
                              env=env, check=False)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().splitlines() == ["gpu-check: no CUDA device on this machine; nothing to check."]


def test_a_child_process_peak_is_its_own_not_ours(tmp_path):
    """Linux gives a forked child its parent's peak RSS; run_process must report the child's."""
    grown = torch.ones(300 * 2**20 // 4)  # this process: 300 MiB more than the child will use
    grown += 1  # touch every page
    child = "import numpy; a = numpy.ones(64 * 2**20 // 8); a += 1"
    peak = common.run_process([sys.executable, "-c", child], {}, tmp_path / "child.log")["peak_rss_mib"]
    assert 64 < peak < 250


@pytest.mark.parametrize("flags", [
    ["--threads", "0"], ["--threads", "-1"], ["--repeats", "0"], ["--rounds", "nan"], ["--iterations", "1e12"],
    ["--seconds", "nan"], ["--seconds", "0.75,inf"], ["--rates", "8000,x"], ["--rates", "1000"],
    ["--batches", "0"], ["--batches", "1,1"],
])
def test_bad_bench_flags_are_one_line(flags, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main([*flags, "--no-zounds"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and err.startswith("pal bench: error: argument ")
    assert flags[0] in err and "Traceback" not in err


def test_an_unwritable_matrix_out_is_one_line_after_the_table(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["--matrix", "--quick", "--out", str(blocker / "table.json")]) == 2
    captured = capsys.readouterr()
    assert "l1" in captured.out + captured.err  # the table was printed
    assert captured.err.strip().splitlines()[-1].startswith("pal bench: error: cannot write --out")

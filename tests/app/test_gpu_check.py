"""scripts/gpu-check without a GPU: a part bounded in time, how far a cut-short part got, the
screen and the JSON summary, and the whole script with CPU stand-ins for its parts.

(That the script says so in one line and exits 0 without CUDA is tested in bench/test_bench.py.)
"""

import importlib.machinery
import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(REPO / "scripts" / "gpu-check"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("gpu_check", loader))
    sys.modules["gpu_check"] = module  # its dataclasses look their module up by name
    loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def test_a_part_within_its_limit_gives_its_status_and_output(gpu_check, tmp_path):
    command = [sys.executable, "-c", "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"]
    finished = gpu_check.run_bounded(command, 60, tmp_path / "log.txt")
    assert finished.returncode == 3
    assert "to stdout" in finished.output and "to stderr" in finished.output
    assert (tmp_path / "log.txt").read_text() == finished.output


def test_a_part_past_its_limit_is_killed_and_keeps_what_it_printed(gpu_check, tmp_path):
    command = [sys.executable, "-S", "-c", "import time; print('iteration 100/1000: mse 0.5', flush=True); time.sleep(600)"]
    finished = gpu_check.run_bounded(command, 3, tmp_path / "log.txt")
    assert finished.returncode is None
    assert "iteration 100/1000" in finished.output


def test_a_part_with_no_time_left_is_killed_at_once(gpu_check, tmp_path):
    finished = gpu_check.run_bounded([sys.executable, "-c", "import time; time.sleep(600)"], 0, tmp_path / "log.txt")
    assert finished.returncode is None


def test_how_far_a_cut_short_run_got(gpu_check, tmp_path):
    for run, iteration in [("mse/seed-0", 250), ("mse/seed-0", 500), ("perceptual/seed-1", 250)]:
        folder = tmp_path / "run" / "clips" / "speech" / run
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"iter-{iteration:04d}.wav").write_bytes(b"")
    output = "iteration 100/1000: speech/mse/0 0.5\niteration 600/1000: speech/mse/0 0.25\n"
    assert gpu_check.run_progress(output, tmp_path / "run") == "iteration 600/1000; latest checkpoint on disk: iteration 500"
    assert gpu_check.run_progress("", tmp_path / "none") == "no iteration reported; latest checkpoint on disk: none"
    assert gpu_check.run_detail(output, tmp_path / "run", timed_out=True) == [
        "iteration 600/1000; latest checkpoint on disk: iteration 500"]


def test_a_finished_run_is_read_from_its_records(gpu_check, tmp_path):
    records = [{"status": "finished", "seconds": 4.25}, {"status": "failed", "seconds": 4.25}]
    (tmp_path / "runs.json").write_text(json.dumps(records))
    assert gpu_check.run_detail("", tmp_path, timed_out=False) == ["1/2 runs finished, 4.2 s of training"]


def test_the_tests_part_gives_counts_failures_or_how_far_it_got(gpu_check):
    output = textwrap.dedent("""\
        ..F.s                                                   [100%]
        =========================== short test summary info ============================
        FAILED tests/library/test_cuda.py::test_cuda_float32_matches_the_cpus_float32[masked] - assert 0.1 < 1e-05
        SKIPPED [1] tests/app/run/test_run_on_cuda.py:30: no CUDA device on this machine
        1 failed, 3 passed, 1 skipped in 12.30s
        """)
    assert gpu_check.pytest_detail(output, timed_out=False) == [
        "1 failed, 3 passed, 1 skipped in 12.30s",
        "  FAILED tests/library/test_cuda.py::test_cuda_float32_matches_the_cpus_float32[masked] - assert 0.1 < 1e-05"]
    cut_short = "........................ [ 12%]\n....................F... [ 45%]\n"
    assert gpu_check.pytest_detail(cut_short, timed_out=True) == ["stopped at 45% of the selected tests"]


def test_the_matrix_part_gives_both_cells_per_loss_or_how_many_were_measured(gpu_check, tmp_path):
    cells = [
        {"loss": "perceptual", "sample_rate": 11025, "seconds": 0.75, "batch": 1, "ms": 10.04, "peak_mib": 112.0},
        {"loss": "perceptual", "sample_rate": 44100, "seconds": 4.0, "batch": 8, "ms": None, "peak_mib": None,
         "skipped": "CUDA out of memory"},
        {"loss": "mse", "sample_rate": 44100, "seconds": 4, "batch": 8, "ms": 0.2, "peak_mib": 5.6},
    ]
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps({"losses": {"perceptual": "the post's", "mse": "mean squared error"}, "cells": cells}))
    lines = gpu_check.matrix_detail("", path, timed_out=False)
    assert lines[1].split() == ["perceptual", "10.0", "ms", "112", "MiB", "skipped"]
    assert lines[2].split() == ["mse", "-", "0.2", "ms", "6", "MiB"]
    printed = ("  perceptual       11025 Hz  0.75 s x1:      10.0 ms    112.0 MiB\n"
               "  masked           44100 Hz  4.00 s x8: CUDA out of memory\n")
    assert gpu_check.matrix_detail(printed, tmp_path / "absent.json", timed_out=True) == [
        "2 cells measured before it stopped (see the log)"]


def test_the_ops_part_runs_only_where_pal_bench_has_the_flag(gpu_check, tmp_path):
    assert gpu_check.has_ops_flag("  --matrix   the cost table\n  --ops       operations dispatched per call\n")
    assert not gpu_check.has_ops_flag("  --matrix   the cost table\n  --opsy  no\n")
    without, with_ops = (gpu_check.parts("python3", tmp_path, tmp_path / "m.json", ops) for ops in (False, True))
    assert [part.kind for part in without] == ["tests", "ops", "matrix", "run", "run"]
    assert without[1].command == [] and with_ops[1].command == ["python3", "-m", "pal.cli", "bench", "--ops"]


def test_the_parts_fit_the_budget_and_run_the_issues_set(gpu_check, tmp_path):
    parts = gpu_check.parts("python3", tmp_path, tmp_path / "m.json", True)
    assert sum(part.limit_s for part in parts) <= gpu_check.BUDGET_S < 8 * 60
    set_75 = parts[-1].command
    assert set_75[set_75.index("--losses") + 1].split(",") == ["mse", "perceptual", "masked", "mrstft",
                                                               "masked+perceptual"]
    assert set_75[set_75.index("--seeds") + 1] == "0,1,2" and set_75[set_75.index("--iterations") + 1] == "1000"
    assert [arg for arg in set_75 if arg in ("speech", "piano", "band", "hiphop", "drums")] == gpu_check.CLIPS
    assert all(part.command[1:3] == ["-m", "pal.cli"] or part.kind == "tests" for part in parts)


def test_the_summary_and_the_screen(gpu_check, tmp_path):
    outcomes = [
        gpu_check.Outcome("CUDA tests", "ok", 61.0, 150, "pytest", ["3 passed in 60s"]),
        gpu_check.Outcome("operation counts", "not available", 0.0, 30, "", ["  not available"]),
        gpu_check.Outcome("75 runs", "timed out", 130.0, 130, "pal run", ["iteration 300/1000; ..."]),
    ]
    gpu_check.write_summary(tmp_path / "summary.json", {"gpu": "stand-in"}, outcomes)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["gpu"] == "stand-in" and summary["ok"] is False
    assert [part["status"] for part in summary["parts"]] == ["ok", "not available", "timed out"]
    assert summary["parts"][2]["detail"] == ["iteration 300/1000; ..."]
    lines = gpu_check.screen("gpu-check on stand-in", outcomes, tmp_path).splitlines()
    assert lines[1:6] == ["[ok  ] CUDA tests: ok (61 s of 150)", "  3 passed in 60s",
                          "[--  ] operation counts: not available", "    not available",
                          "[FAIL] 75 runs: timed out (130 s of 130)"]


@pytest.mark.slow
def test_the_whole_check_with_cpu_stand_ins(gpu_check, tmp_path, monkeypatch, capsys):
    """main() as on a GPU, each kind of part replaced by a small CPU one; one never gets time."""
    tests = tmp_path / "stand_in_tests.py"
    tests.write_text("def test_passes():\n    assert True\n\n\ndef test_fails():\n    assert False\n")
    python, pal = sys.executable, [sys.executable, "-m", "pal.cli"]
    run = [*pal, "run", "drums", "--losses", "mse", "--iterations", "2", "--checkpoint-every", "1", "--device", "cpu"]

    def stand_ins(python_, runs, matrix_json, ops):
        return [
            gpu_check.Part("tests", "tests", [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tests)], 120),
            gpu_check.Part("ops", "ops", [], 30),
            gpu_check.Part("matrix", "matrix", [*pal, "bench", "--matrix", "--quick", "--device", "cpu", "--out",
                                                str(matrix_json)], 120),
            gpu_check.Part("run", "run", [*run, "--out", str(runs / "a")], 120, runs / "a"),
            gpu_check.Part("no time", "run", [*run, "--out", str(runs / "b")], 0, runs / "b"),
        ]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *device: "a CPU standing in")
    monkeypatch.setattr(gpu_check, "parts", stand_ins)
    monkeypatch.setattr(gpu_check, "RUNS", tmp_path / "runs")
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    assert gpu_check.main() == 1
    summary = json.loads((tmp_path / "out" / "gpu-check" / "summary.json").read_text())
    assert summary["gpu"] == "a CPU standing in"
    statuses = {part["name"]: part["status"] for part in summary["parts"]}
    assert statuses == {"tests": "failed", "ops": "not available", "matrix": "ok", "run": "ok", "no time": "timed out"}
    details = {part["name"]: part["detail"] for part in summary["parts"]}
    assert details["tests"][0].startswith("1 failed, 1 passed")
    assert [line.split()[0] for line in details["matrix"][1:]] == ["l1", "mel"]
    assert details["run"] == [f"1/1 runs finished, {json.loads((tmp_path / 'runs' / 'a' / 'runs.json').read_text())[0]['seconds']:.1f} s of training"]
    assert details["no time"] == ["no iteration reported; latest checkpoint on disk: none"]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("gpu-check on a CPU standing in") and len(printed) <= 30
    assert (tmp_path / "out" / "gpu-check" / "matrix.json").exists()

"""``pal bench --sweep``: ``pal sweep`` throughput with one and two workers."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP_CLIPS = ("speech", "piano", "band", "drums")


def bench_sweep(iterations: int, rounds: int, executors: list[str]) -> dict:
    """Throughput of ``pal sweep`` with 1 and 2 worker processes, in runs per minute.

    4 clips x 2 windows x (mse, perceptual) x 1 seed = 16 runs in 4 shards of 4. Each variant is
    the whole command in its own process (planning, training, measures, summary), the variants
    alternating round by round.
    """
    import soundfile

    from ..clips import builtin_clip

    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        data.mkdir()
        for name in SWEEP_CLIPS:
            samples, rate = builtin_clip(name)
            soundfile.write(str(data / f"{name}.wav"), samples, rate)
        runs = len(SWEEP_CLIPS) * 2 * 2
        variants = [(executor, workers) for executor in executors for workers in (1, 2)]
        for round_index in range(rounds):
            for executor, workers in variants:
                out = Path(scratch) / f"{executor}-{workers}-{round_index}"
                command = [sys.executable, "-m", "pal.cli", "sweep", str(data), "--out", str(out),
                           "--losses", "mse,perceptual", "--windows-per-clip", "2", "--iterations", str(iterations),
                           "--checkpoint-every", str(iterations), "--runs-per-task", "4", "--workers", str(workers),
                           "--executor", executor, "--no-progress"]
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                results.setdefault(f"{executor}, {workers} worker(s)", []).append(time.perf_counter() - started)
    report = {name: {"seconds": statistics.median(times), "runs_per_minute": runs / statistics.median(times) * 60}
              for name, times in results.items()}
    for executor in executors:
        one, two = report[f"{executor}, 1 worker(s)"], report[f"{executor}, 2 worker(s)"]
        report[f"{executor} scaling"] = two["runs_per_minute"] / one["runs_per_minute"]
    return {"runs": runs, "iterations": iterations, "rounds": rounds, "variants": report}


def print_sweep(report: dict) -> None:
    print(f"sweep of {report['runs']} runs x {report['iterations']} iterations (4 shards of 4), "
          f"median of {report['rounds']} round(s):")
    for name, row in report["variants"].items():
        if isinstance(row, dict):
            print(f"  {name:22s} {row['seconds']:7.1f} s, {row['runs_per_minute']:6.1f} runs per minute")
        else:
            print(f"  {name:22s} {row:.2f}x")

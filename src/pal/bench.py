"""``pal bench``: speed and memory of the fast paths against the seed's way, side by side in one run.

Timings are ratios taken on the same machine in the same run, the variants interleaved so a
drift of the machine's speed hits them alike; peak memory is each variant's own process's peak
resident set. Prints a table and a last line ``BENCH_JSON {...}`` for machines to read.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 11025
WINDOW = 8192
SEED_CLIPS = ("speech", "piano", "band", "hiphop", "drums")
SEED_LOSSES = ("mse", "perceptual")


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def seed_targets() -> torch.Tensor:
    from .audio import prepare_clip
    from .clips import builtin_clip

    windows = [prepare_clip(name, *builtin_clip(name), name).samples for name in SEED_CLIPS]
    return torch.from_numpy(np.stack(windows)).unsqueeze(1)


def loss_variants(device: torch.device) -> dict:
    """The three ways to take the seed loss's gradient for one clip, as zero-argument steps; and,
    apart, ours beside the masked loss (timed apart: right after the direct path's large buffers
    are freed, the masked loss's small allocations fault pages in and it reads 5-10x slower)."""
    from perceptual_audio_loss.losses import TargetLoss
    from perceptual_audio_loss.perceptual import PerceptualLoss

    target = seed_targets()[:1].to(device)
    generator = torch.Generator().manual_seed(0)
    start = (0.3 * torch.randn(1, 1, WINDOW, generator=generator)).to(device)
    direct = PerceptualLoss(SAMPLE_RATE, method="direct").to(device)
    cached_direct = TargetLoss(direct, target)
    cached_fft = TargetLoss(PerceptualLoss(SAMPLE_RATE, method="fft").to(device), target)
    from perceptual_audio_loss.masking import MaskedLoss

    cached_masked = TargetLoss(MaskedLoss(SAMPLE_RATE).to(device), target)

    def step(compute):
        x = start.clone().requires_grad_(True)
        value = compute(x)
        value.sum().backward()
        return value.detach().sum().item(), x.grad

    return {
        "direct, target recomputed (the seed's way)": lambda: step(lambda x: direct(x, target)),
        "direct, target cached": lambda: step(cached_direct),
        "fft, target cached (ours)": lambda: step(cached_fft),
    }, {
        "fft, target cached (ours)": lambda: step(cached_fft),
        "masked loss, target cached": lambda: step(cached_masked),
    }


def time_interleaved(steps: dict, repeats: int) -> dict:
    """Median seconds per call of each step, the steps taking turns, after one warm-up each."""
    for step in steps.values():
        step()
    seconds = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def bench_loss(device: torch.device, repeats: int) -> dict:
    steps, masked_pair = loss_variants(device)
    medians = time_interleaved(steps, repeats)
    pair = time_interleaved(masked_pair, repeats)
    names = list(steps)
    reference_value, reference_grad = steps[names[0]]()
    fast_value, fast_grad = steps[names[2]]()
    return {
        "seconds": medians,
        "speedup_vs_recomputed": medians[names[0]] / medians[names[2]],
        "speedup_vs_cached_direct": medians[names[1]] / medians[names[2]],
        "masked_seconds": pair["masked loss, target cached"],
        "masked_vs_perceptual": pair["masked loss, target cached"] / pair["fft, target cached (ours)"],
        "value_relative_difference": abs(fast_value - reference_value) / abs(reference_value),
        "gradient_relative_difference": ((fast_grad - reference_grad).norm() / reference_grad.norm()).item(),
    }


def bench_crossover(device: torch.device, repeats: int) -> list[dict]:
    """Direct against FFT filtering as the filters lengthen: the basis of ``method="auto"``."""
    from perceptual_audio_loss.perceptual import PerceptualLoss

    x = torch.randn(1, 1, WINDOW, device=device)
    rows = []
    for taps in (8, 16, 32, 64, 128, 512):
        modules = {m: PerceptualLoss(SAMPLE_RATE, n_bands=128, taps=taps, method=m).to(device) for m in ("direct", "fft")}
        medians = time_interleaved({m: (lambda mod=mod: mod.features(x)) for m, mod in modules.items()}, repeats)
        rows.append({"taps": taps, "direct_s": medians["direct"], "fft_s": medians["fft"]})
    return rows


# --- the whole experiment, one process per variant --------------------------------------------


def worker_reference(iterations: int, device: str) -> dict:
    """The seed's pipeline: one generator at a time, direct filtering, target recomputed."""
    from perceptual_audio_loss.perceptual import PerceptualLoss
    from .train import train_one

    targets = seed_targets()
    losses = {"mse": torch.nn.MSELoss(), "perceptual": PerceptualLoss(SAMPLE_RATE, method="direct")}
    started = time.perf_counter()
    for target in targets:
        for name in SEED_LOSSES:
            train_one(target[None], losses[name], 0, iterations, iterations, device)
    return {"train_seconds": time.perf_counter() - started}


def worker_ours(iterations: int, device: str) -> dict:
    """The real ``pal run`` on the five built-in clips, writing its run folder and page."""
    from .config import ExperimentConfig
    from .experiment import run_experiment

    config = ExperimentConfig(iterations=iterations, checkpoint_every=max(1, iterations // 4), device=device)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run_experiment(config, Path(folder) / "run", progress=False)
        total = time.perf_counter() - started
        train = json.loads((Path(folder) / "run" / "runs.json").read_text())[0]["seconds"]
    return {"train_seconds": train, "total_seconds": total}


WORKERS = {"reference": worker_reference, "ours": worker_ours}


def run_worker(name: str, iterations: int, device: str) -> dict:
    command = [sys.executable, "-m", "pal.bench", "--worker", name,
               "--iterations", str(iterations), "--device", device]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"benchmark worker {name} failed:\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def bench_experiment(iterations: int, rounds: int, device: str) -> dict:
    results = {name: [] for name in WORKERS}
    for _ in range(rounds):
        for name in WORKERS:
            results[name].append(run_worker(name, iterations, device))
    summary = {}
    for name, runs in results.items():
        train = statistics.median(r["train_seconds"] for r in runs)
        summary[name] = {
            "train_seconds": train,
            "seconds_per_iteration": train / iterations,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        }
    summary["speedup"] = summary["reference"]["train_seconds"] / summary["ours"]["train_seconds"]
    return summary


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} threads{gpu}, torch {torch.__version__}"


def print_report(report: dict) -> None:
    loss = report["loss"]
    print(f"machine: {report['machine']}")
    print(f"\nloss forward+backward, seed settings, one {WINDOW}-sample clip ({report['device']}):")
    for name, seconds in loss["seconds"].items():
        print(f"  {name:44s} {seconds * 1000:9.1f} ms")
    print(f"  speed-up vs the seed's way: {loss['speedup_vs_recomputed']:.1f}x; "
          f"vs direct with cached target: {loss['speedup_vs_cached_direct']:.1f}x; "
          f"the masked loss ({loss['masked_seconds'] * 1000:.1f} ms, timed beside ours) "
          f"costs {loss['masked_vs_perceptual']:.2f}x ours")
    print(f"  loss value relative difference {loss['value_relative_difference']:.2e}, "
          f"gradient {loss['gradient_relative_difference']:.2e}")
    print("\nfilter bank, 128 bands: direct vs fft (features only)")
    for row in report["crossover"]:
        print(f"  taps {row['taps']:4d}: direct {row['direct_s'] * 1000:7.2f} ms, fft {row['fft_s'] * 1000:7.2f} ms")
    experiment = report["experiment"]
    print(f"\nseed experiment, {len(SEED_CLIPS)} clips x {len(SEED_LOSSES)} losses x "
          f"{report['iterations']} iterations ({report['device']}):")
    for name in WORKERS:
        row = experiment[name]
        print(f"  {name:10s} {row['train_seconds']:8.2f} s training, {row['seconds_per_iteration'] * 1000:8.1f} ms "
              f"per iteration (all runs), peak memory {row['peak_rss_mib']:7.0f} MiB")
    print(f"  speed-up: {experiment['speedup']:.1f}x")
    print("BENCH_JSON " + json.dumps(report))


SWEEP_CLIPS = ("speech", "piano", "band", "drums")


def bench_sweep(iterations: int, rounds: int, executors: list[str]) -> dict:
    """Throughput of ``pal sweep`` with 1 and 2 worker processes, in runs per minute.

    4 clips x 2 windows x (mse, perceptual) x 1 seed = 16 runs in 4 shards of 4. Each variant is
    the whole command in its own process (planning, training, measures, summary), the variants
    alternating round by round.
    """
    import soundfile

    from .clips import builtin_clip

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


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="pal bench")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per run in the experiment section")
    parser.add_argument("--rounds", type=int, default=1, help="times each experiment variant runs")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls of each loss variant")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--sweep", action="store_true", help="only the sweep throughput: 1 against 2 workers")
    parser.add_argument("--executors", default="local,ray", help="for --sweep: local, ray or both (default)")
    args = parser.parse_args(argv)
    if args.sweep:
        report = {"machine": machine(), "sweep": bench_sweep(args.iterations, args.rounds, args.executors.split(","))}
        print_sweep(report["sweep"])
        print("BENCH_JSON " + json.dumps(report))
        return 0
    from .config import resolve_device

    device = resolve_device(args.device)
    if args.worker:
        result = WORKERS[args.worker](args.iterations, str(device))
        print(json.dumps(result | {"peak_rss_mib": peak_rss_mib()}))
        return 0
    report = {
        "machine": machine(),
        "device": str(device),
        "iterations": args.iterations,
        "loss": bench_loss(device, args.repeats),
        "crossover": bench_crossover(device, args.repeats),
        "experiment": bench_experiment(args.iterations, args.rounds, str(device)),
    }
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The default ``pal bench``: the perceptual loss per call and with its target prepared once,
against zounds 1.57.0's own ``PerceptualLoss`` (the post's original code, run by
``tools/zounds/harness.py`` in ``.venv-zounds``), and the 2018 experiment as a whole process
against the 2018 way with zounds' loss (``tools/zounds/post_experiment.py``); the variants take
turns round by round. The in-project ``method="direct"`` path appears only as a correctness
reference, never as a speed baseline."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .common import EXPERIMENT_CLIPS, EXPERIMENT_LOSSES, REPO_ROOT, SAMPLE_RATE, WINDOW, gradient_step, post_targets, run_process, thread_env, time_interleaved

ZOUNDS_TOOLS = REPO_ROOT / "tools" / "zounds"


DEFAULT_ZOUNDS_VENV = REPO_ROOT / ".venv-zounds"


MISSING_ZOUNDS = "zounds baseline skipped: {venv} is missing; build it with `make zounds-venv`"


def zounds_python(venv: Path) -> Path | None:
    """The zounds venv's python, if it and the harness are there."""
    python = venv / "bin" / "python"
    return python if python.exists() and (ZOUNDS_TOOLS / "harness.py").exists() else None


def loss_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """The speech clip's window as target, seeded noise as input: ``(1, 1, 8192)`` each."""
    target = post_targets(("speech",))
    start = 0.3 * torch.randn(1, 1, WINDOW, generator=torch.Generator().manual_seed(0))
    return start, target


def our_loss_steps(start: torch.Tensor, target: torch.Tensor) -> dict:
    from perceptual_audio_loss import MaskedLoss, PerceptualLoss

    ours = PerceptualLoss(SAMPLE_RATE)
    prepared = ours.target_features(target)
    masked = MaskedLoss(SAMPLE_RATE)
    masked_prepared = masked.target_features(target)
    torch_path = PerceptualLoss(SAMPLE_RATE, compiled=False)
    return {
        "ours, loss(x, y) per call": gradient_step(lambda x: ours(x, target), start),
        "ours, loss.against(x, prepared)": gradient_step(lambda x: ours.against(x, prepared), start),
        "ours without a compiler, per call": gradient_step(lambda x: torch_path(x, target), start),
        "ours without a compiler, prepared": gradient_step(lambda x: torch_path.against(x, prepared), start),
        "masked loss, against(x, prepared)": gradient_step(lambda x: masked.against(x, masked_prepared), start),
    }


FULL_BAND_RATE = 44100


def full_band_steps() -> dict:
    """``PerceptualLoss(44100)`` (the post's configuration) on one second, target transformed
    every call: the compiled kernels against the torch path, which is the code before them."""
    from perceptual_audio_loss import PerceptualLoss

    generator = torch.Generator().manual_seed(1)
    target = torch.randn(1, 1, FULL_BAND_RATE, generator=generator)
    start = 0.3 * torch.randn(1, 1, FULL_BAND_RATE, generator=generator)
    compiled, torch_path = PerceptualLoss(FULL_BAND_RATE), PerceptualLoss(FULL_BAND_RATE, compiled=False)
    return {"compiled kernels": gradient_step(lambda x: compiled(x, target), start),
            "torch path (the code before them)": gradient_step(lambda x: torch_path(x, target), start)}


def bench_full_band(rounds: int, repeats: int) -> dict:
    calls = {}
    for _ in range(rounds):
        for name, seconds in time_interleaved(full_band_steps(), max(1, repeats // 3)).items():
            calls.setdefault(name, []).extend(seconds)
    medians = {name: statistics.median(seconds) for name, seconds in calls.items()}
    return {"seconds": medians, "calls": len(next(iter(calls.values()))),
            "speed_up": medians["torch path (the code before them)"] / medians["compiled kernels"]}


def zounds_call_ms(python: Path, folder: Path, repeats: int, threads: int) -> list[float]:
    """zounds' forward+backward per call, in ms, from the harness in its own venv."""
    command = [str(python), str(ZOUNDS_TOOLS / "harness.py"), "time", "--input", str(folder / "input.npy"),
               "--target", str(folder / "target.npy"), "--repeats", str(repeats)]
    finished = subprocess.run(command, capture_output=True, text=True, env=thread_env(threads), check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"zounds harness failed:\n{finished.stderr[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])["ms"]


def correctness_reference(start: torch.Tensor, target: torch.Tensor) -> dict:
    """Our default (FFT) path against the in-project float32 direct ``conv1d`` path: a correctness
    reference only, never a speed baseline."""
    from perceptual_audio_loss import PerceptualLoss

    fast_value, fast_grad = gradient_step(lambda x: PerceptualLoss(SAMPLE_RATE)(x, target), start)()
    direct = PerceptualLoss(SAMPLE_RATE, method="direct")
    value, grad = gradient_step(lambda x: direct(x, target), start)()
    return {"value_relative_difference": abs(fast_value - value) / abs(value),
            "gradient_relative_difference": ((fast_grad - grad).norm() / grad.norm()).item()}


def bench_loss(zounds: Path | None, rounds: int, repeats: int, threads: int) -> dict:
    """Round by round: zounds' harness (a subprocess), then ours in this process, same arrays."""
    start, target = loss_inputs()
    steps = our_loss_steps(start, target)
    calls = {name: [] for name in steps} | ({"zounds 1.57.0, loss(x, y) per call": []} if zounds else {})
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        np.save(folder / "input.npy", start.numpy().reshape(-1))
        np.save(folder / "target.npy", target.numpy().reshape(-1))
        for _ in range(rounds):
            if zounds:
                calls["zounds 1.57.0, loss(x, y) per call"] += [ms / 1000 for ms in zounds_call_ms(zounds, folder, repeats, threads)]
            for name, seconds in time_interleaved(steps, repeats).items():
                calls[name] += seconds
    medians = {name: statistics.median(seconds) for name, seconds in calls.items()}
    report = {"seconds": medians, "calls": {name: len(seconds) for name, seconds in calls.items()},
              "reference": correctness_reference(start, target)}
    if zounds:
        baseline = medians["zounds 1.57.0, loss(x, y) per call"]
        report["zounds_over_ours"] = {"per call": baseline / medians["ours, loss(x, y) per call"],
                                      "target prepared": baseline / medians["ours, loss.against(x, prepared)"],
                                      "per call without a compiler": baseline / medians["ours without a compiler, per call"],
                                      "prepared without a compiler": baseline / medians["ours without a compiler, prepared"]}
    return report


def experiment_commands(zounds: Path, folder: Path, iterations: int, round_index: int) -> dict:
    names = ",".join(EXPERIMENT_CLIPS)
    ours_out = folder / f"ours-{round_index}"
    return {
        "ours: pal run": [sys.executable, "-m", "pal.cli", "run", *EXPERIMENT_CLIPS, "--losses", ",".join(EXPERIMENT_LOSSES),
                          "--iterations", str(iterations), "--checkpoint-every", str(iterations), "--device", "cpu",
                          "--out", str(ours_out), "--force", "--no-progress"],
        "zounds 1.57.0, the 2018 way": [str(zounds), str(ZOUNDS_TOOLS / "post_experiment.py"), "--targets",
                                          str(folder / "targets.npy"), "--names", names, "--losses",
                                          ",".join(EXPERIMENT_LOSSES), "--iterations", str(iterations),
                                          "--out", str(folder / f"zounds-{round_index}")],
    }


def training_seconds(name: str, folder: Path, log: Path, round_index: int) -> float:
    """Training alone: ours from the run folder's records, zounds' from its last printed line."""
    if name.startswith("ours"):
        from ..run.folder import RunFolder

        return RunFolder(folder / f"ours-{round_index}").read_runs()[0].seconds
    return json.loads(log.read_text().strip().splitlines()[-1])["train_seconds"]


def bench_experiment(zounds: Path, iterations: int, rounds: int, threads: int) -> dict:
    """``pal run`` on 3 clips x 2 losses against the 2018 way with zounds' loss, alternating."""
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        np.save(folder / "targets.npy", post_targets().numpy()[:, 0])
        for round_index in range(rounds):
            for name, command in experiment_commands(zounds, folder, iterations, round_index).items():
                log = folder / f"log-{round_index}-{len(results.get(name, []))}-{name[:4]}.txt"
                row = run_process(command, thread_env(threads), log)
                row["train_seconds"] = training_seconds(name, folder, log, round_index)
                results.setdefault(name, []).append(row)
    summary = {name: {key: statistics.median(row[key] for row in rows) for key in ("seconds", "train_seconds")}
               | {"peak_rss_mib": max(row["peak_rss_mib"] for row in rows)} for name, rows in results.items()}
    ours, theirs = summary["ours: pal run"], summary["zounds 1.57.0, the 2018 way"]
    summary["zounds_over_ours"] = {"whole process": theirs["seconds"] / ours["seconds"],
                                   "training": theirs["train_seconds"] / ours["train_seconds"]}
    return summary


def bench_crossover(device: torch.device, repeats: int) -> list[dict]:
    """Direct against FFT filtering as the filters lengthen: the basis of ``method="auto"``."""
    from perceptual_audio_loss.perceptual import PerceptualLoss

    x = torch.randn(1, 1, WINDOW, device=device)
    rows = []
    for taps in (8, 16, 32, 64, 128, 512):
        modules = {m: PerceptualLoss(SAMPLE_RATE, n_bands=128, taps=taps, method=m).to(device) for m in ("direct", "fft")}
        seconds = time_interleaved({m: (lambda mod=mod: mod.features(x)) for m, mod in modules.items()}, repeats)
        rows.append({"taps": taps, "direct_s": statistics.median(seconds["direct"]),
                     "fft_s": statistics.median(seconds["fft"])})
    return rows


def print_report(report: dict) -> None:
    loss = report["loss"]
    print(f"machine: {report['machine']}")
    print(f"\nperceptual loss forward+backward, {SAMPLE_RATE} Hz, one {WINDOW}-sample clip, batch 1 "
          f"(cpu, {report['threads']} torch threads; medians of {max(loss['calls'].values())} calls):")
    for name, seconds in loss["seconds"].items():
        print(f"  {name:44s} {seconds * 1000:9.1f} ms")
    if "zounds_over_ours" in loss:
        ratio = loss["zounds_over_ours"]
        print(f"  zounds / ours: {ratio['per call']:.1f}x per call; {ratio['target prepared']:.1f}x with the target "
              f"prepared once (zounds has no such path: its per-call time is the baseline for both)")
        print(f"  without a compiler (the torch path): {ratio['per call without a compiler']:.1f}x per call; "
              f"{ratio['prepared without a compiler']:.1f}x prepared")
    else:
        print("  " + report["zounds_missing"])
    reference = loss["reference"]
    print(f"  correctness reference (in-project method=\"direct\", float32): value relative difference "
          f"{reference['value_relative_difference']:.2e}, gradient {reference['gradient_relative_difference']:.2e}")
    full_band = report.get("full_band")
    if full_band:
        print(f"\nPerceptualLoss({FULL_BAND_RATE}), one second, batch 1, target transformed every call "
              f"(medians of {full_band['calls']} calls):")
        for name, seconds in full_band["seconds"].items():
            print(f"  {name:44s} {seconds * 1000:9.1f} ms")
        print(f"  speed-up of the compiled kernels: {full_band['speed_up']:.2f}x")
    print("\nfilter bank, 128 bands: direct vs fft (features only; the basis of method=\"auto\")")
    for row in report["crossover"]:
        print(f"  taps {row['taps']:4d}: direct {row['direct_s'] * 1000:7.2f} ms, fft {row['fft_s'] * 1000:7.2f} ms")
    experiment = report.get("experiment")
    if experiment:
        print(f"\n2018 experiment, {len(EXPERIMENT_CLIPS)} clips ({', '.join(EXPERIMENT_CLIPS)}) x "
              f"{len(EXPERIMENT_LOSSES)} losses x {report['iterations']} iterations, each a whole process "
              f"(cpu, medians of {report['rounds']} round(s)):")
        for name, row in experiment.items():
            if name != "zounds_over_ours":
                print(f"  {name:32s} {row['seconds']:7.1f} s whole process, {row['train_seconds']:7.1f} s training, "
                      f"peak {row['peak_rss_mib']:5.0f} MiB")
        ratio = experiment["zounds_over_ours"]
        print(f"  zounds / ours: {ratio['whole process']:.1f}x whole process, {ratio['training']:.1f}x training "
              f"(ours also scores every checkpoint and writes the page)")
    print("BENCH_JSON " + json.dumps(report))

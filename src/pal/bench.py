"""``pal bench``: our losses' speed and memory, side by side with zounds 1.57.0 and with their peers.

The parts:

- the default: the perceptual loss per call and with its target prepared once, against zounds 1.57.0's
  own ``PerceptualLoss`` (the post's original code, run by ``tools/zounds/harness.py`` in
  ``.venv-zounds``), and the 2018 experiment as a whole process against the 2018 way with
  zounds' loss (``tools/zounds/post_experiment.py``); the variants take turns round by round;
- ``--matrix``: forward+backward time and peak memory of the library's losses and their peers
  (auraloss's MR-STFT, a DAC-style multi-scale mel loss, L1, MSE) over sample rates, lengths and
  batch sizes, each CPU cell in a fresh process so its memory is its own; beside it the op counts:
- ``--ops``: the aten operations one forward+backward of each loss dispatches, and one training
  iteration of the default run, on the code path CUDA runs, counted on the CPU as well
  (:mod:`pal.opcount`): the GPU's launch budget, watched without a GPU;
- ``--sweep``: ``pal sweep`` throughput with one and two workers.

The in-project ``method="direct"`` path appears only as a correctness reference (the float32 FFT
path's value and gradient against it), never as a speed baseline. Prints tables and a last line
``BENCH_JSON {...}`` for machines to read.
"""

from __future__ import annotations

import json
import os
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

from .config import Number, NumberList

SAMPLE_RATE = 11025
WINDOW = 8192
EXPERIMENT_CLIPS = ("speech", "piano", "drums")
EXPERIMENT_LOSSES = ("mse", "perceptual")
REPO_ROOT = Path(__file__).resolve().parents[2]
ZOUNDS_TOOLS = REPO_ROOT / "tools" / "zounds"
DEFAULT_ZOUNDS_VENV = REPO_ROOT / ".venv-zounds"
MISSING_ZOUNDS = "zounds baseline skipped: {venv} is missing; build it with `make zounds-venv`"


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def post_targets(names=EXPERIMENT_CLIPS) -> torch.Tensor:
    """The built-in clips' target windows as ``pal run`` prepares them: ``(clips, 1, 8192)``."""
    from .audio import prepare_clip
    from .clips import builtin_clip

    windows = [prepare_clip(name, *builtin_clip(name), name).samples for name in names]
    return torch.from_numpy(np.stack(windows)).unsqueeze(1)


def zounds_python(venv: Path) -> Path | None:
    """The zounds venv's python, if it and the harness are there."""
    python = venv / "bin" / "python"
    return python if python.exists() and (ZOUNDS_TOOLS / "harness.py").exists() else None


def thread_env(threads: int) -> dict:
    """The environment for a child process that should use ``threads`` torch threads."""
    return os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def time_interleaved(steps: dict, repeats: int) -> dict:
    """Every call's seconds for each step, the steps taking turns, after one warm-up each."""
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
    return seconds


def gradient_step(compute, start: torch.Tensor):
    """A zero-argument forward+backward of ``compute`` from a fresh copy of ``start``."""

    def step():
        x = start.clone().requires_grad_(True)
        value = compute(x)
        value.backward()
        return value.detach().item(), x.grad

    return step


# --- the perceptual loss against zounds 1.57.0 --------------------------------------------------------


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


# --- the whole experiment, each variant a whole process --------------------------------------


# Linux hands a forked child its parent's peak RSS (the copied address space keeps its high-water
# mark, and exec carries it into ru_maxrss), so a child of this process, grown by the loss
# timings, would report at least our own peak. The command is therefore started by a small
# launcher whose own peak is a few MiB: it forks, execs the command, and writes the child's
# ru_maxrss (KiB) to the file named in its first argument.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(command: list[str], env: dict, log: Path) -> dict:
    """Wall seconds and peak RSS of ``command`` as a whole process (start-up included)."""
    peak = log.with_suffix(".peak")
    with open(log, "w") as output:
        started = time.perf_counter()
        returncode = subprocess.run([sys.executable, "-c", _LAUNCHER, str(peak), *command], stdout=output,
                                    stderr=subprocess.STDOUT, env=env, check=False).returncode
        wall = time.perf_counter() - started
    if returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{log.read_text()[-2000:]}")
    return {"seconds": wall, "peak_rss_mib": int(peak.read_text()) / 1024.0}


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
        from .runfolder import RunFolder

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


# --- the cost matrix: our losses and their peers over rates, lengths and batches ----------------

MATRIX_LOSSES = {
    "perceptual": "PerceptualLoss(rate): the post's configuration, 512 Bark bands, 512 taps, stride 1",
    # Same filter duration (2048 taps = 46 ms at 44.1 kHz, the post's 512 taps at 11025 Hz) and the
    # same feature frame rate (stride 4: 11025 frames/s at 44.1 kHz) as the post, with a quarter of
    # its bands: 128 Bark-spaced bands are still ~5 per critical band (~25 Bark up to 22 kHz).
    "perceptual-44k": "PerceptualLoss(rate, n_bands=128, taps=2048, stride=4): for 44.1/48 kHz",
    "masked": "MaskedLoss(rate), target transformed every call",
    "mrstft": "auraloss.freq.MultiResolutionSTFTLoss(), its defaults",
    "mel": "pal.mel_loss.MultiScaleMelLoss(rate): DAC's recipe, windows 32..2048, 5..320 mel bands",
    "l1": "torch.nn.L1Loss()",
    "mse": "torch.nn.MSELoss()",
}
MATRIX_RATES = (11025, 16000, 44100, 48000)
MATRIX_SECONDS = (0.75, 1.0, 4.0)
MATRIX_BATCHES = (1, 8)
# The CPU subset: two rates, two lengths, both batches; it runs in a few minutes on 2 cores.
CPU_RATES = (11025, 44100)
CPU_SECONDS = (1.0, 4.0)
QUICK = {"losses": ("l1", "mel"), "rates": (11025,), "seconds": (0.75,), "batches": (1,), "repeats": 1}
# On the CPU a cell whose feature maps exceed this many elements per signal batch is skipped: the
# seed configuration at 44.1 kHz x 1 s x 8 already holds 180 M features (720 MB) per map and takes
# tens of seconds per call on 2 cores.
CPU_FEATURE_LIMIT = 1.0e8
MATRIX_SCHEMA = "pal-bench-matrix/1"


def matrix_loss(name: str, rate: int) -> torch.nn.Module:
    from perceptual_audio_loss import MaskedLoss, PerceptualLoss

    if name == "perceptual":
        return PerceptualLoss(rate)
    if name == "perceptual-44k":
        return PerceptualLoss(rate, n_bands=128, taps=2048, stride=4)
    if name == "masked":
        return MaskedLoss(rate)
    if name == "mrstft":
        import auraloss

        return auraloss.freq.MultiResolutionSTFTLoss()
    if name == "mel":
        from .mel_loss import MultiScaleMelLoss

        return MultiScaleMelLoss(rate)
    return {"l1": torch.nn.L1Loss, "mse": torch.nn.MSELoss}[name]()


def feature_elements(name: str, samples: int, batch: int) -> float:
    """Elements of one feature map of the perceptual configurations (0 for the others)."""
    bands, stride = {"perceptual": (512, 1), "perceptual-44k": (128, 4)}.get(name, (0, 1))
    return bands * batch * samples / stride


def cpu_skip_reason(name: str, samples: int, batch: int) -> str | None:
    elements = feature_elements(name, samples, batch)
    if elements > CPU_FEATURE_LIMIT:
        return f"CPU: {elements / 1e6:.0f} M features per map, over the {CPU_FEATURE_LIMIT / 1e6:.0f} M limit"
    return None


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_cell(name: str, rate: int, seconds: float, batch: int, device: str, repeats: int) -> dict:
    """Median forward+backward ms of ``loss(x, y)`` and the peak memory it adds above the set-up.

    CPU: the resident set's high-water mark (reset through ``/proc/self/clear_refs`` after set-up)
    less the resident set then; CUDA: ``max_memory_allocated`` less what was allocated then.
    """
    samples = int(round(rate * seconds))
    generator = torch.Generator().manual_seed(0)
    x0 = (0.1 * torch.randn(batch, 1, samples, generator=generator)).to(device)
    y = (0.1 * torch.randn(batch, 1, samples, generator=generator)).to(device)
    loss = matrix_loss(name, rate).to(device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        base = _rss_kib("VmRSS") * 1024
    step = gradient_step(lambda x: loss(x, y), x0)
    ms = [s * 1000 for s in time_interleaved({name: step}, repeats)[name]]
    peak = torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024
    return {"ms": statistics.median(ms), "peak_mib": max(0, peak - base) / 2**20,
            "memory_measure": "cuda max_memory_allocated increase" if cuda else "peak RSS increase"}


def cell_in_subprocess(cell: dict, device: str, repeats: int, threads: int) -> dict:
    command = [sys.executable, "-m", "pal.bench", "--matrix-cell", json.dumps(cell), "--device", device,
               "--repeats", str(repeats), "--threads", str(threads)]
    finished = subprocess.run(command, capture_output=True, text=True, env=thread_env(threads), check=False)
    if finished.returncode != 0:
        return {"error": (finished.stderr.strip().splitlines() or ["exit %d" % finished.returncode])[-1]}
    return json.loads(finished.stdout.strip().splitlines()[-1])


def matrix_grid(device: str, quick: bool, losses, rates, seconds, batches) -> list[dict]:
    cpu = not device.startswith("cuda")
    losses = losses or (QUICK["losses"] if quick else tuple(MATRIX_LOSSES))
    rates = rates or (QUICK["rates"] if quick else CPU_RATES if cpu else MATRIX_RATES)
    seconds = seconds or (QUICK["seconds"] if quick else CPU_SECONDS if cpu else MATRIX_SECONDS)
    batches = batches or (QUICK["batches"] if quick else MATRIX_BATCHES)
    return [{"loss": name, "sample_rate": rate, "seconds": length, "batch": batch}
            for rate in rates for length in seconds for batch in batches for name in losses]


def bench_matrix(device: str, repeats: int, threads: int, grid: list[dict]) -> dict:
    """Every cell of ``grid``: a fresh process per cell on the CPU, this process on CUDA."""
    cells = []
    for cell in grid:
        samples = int(round(cell["sample_rate"] * cell["seconds"]))
        row = cell | {"samples": samples, "ms": None, "peak_mib": None, "skipped": None}
        reason = None if device.startswith("cuda") else cpu_skip_reason(cell["loss"], samples, cell["batch"])
        if reason:
            row["skipped"] = reason
        elif device.startswith("cuda"):
            try:
                row |= measure_cell(cell["loss"], cell["sample_rate"], cell["seconds"], cell["batch"], device, repeats)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                row["skipped"] = "CUDA out of memory"
        else:
            result = cell_in_subprocess(cell, device, repeats, threads)
            if "error" in result:
                row["skipped"] = f"failed: {result['error']}"
            else:
                row |= result
        cells.append(row)
        print(f"  {row['loss']:15s} {row['sample_rate']:6d} Hz {row['seconds']:5.2f} s x{row['batch']}: "
              + (f"{row['ms']:9.1f} ms {row['peak_mib']:8.1f} MiB" if row["ms"] is not None else row["skipped"]),
              file=sys.stderr, flush=True)
    return {"schema": MATRIX_SCHEMA, "machine": machine(), "device": device, "torch": torch.__version__,
            "threads": threads, "repeats": repeats, "losses": {name: MATRIX_LOSSES[name] for name in
                                                               dict.fromkeys(c["loss"] for c in grid)},
            "cells": cells}


def print_matrix(report: dict) -> None:
    losses = list(report["losses"])
    print(f"machine: {report['machine']}")
    print(f"forward+backward of loss(x, y), median of {report['repeats']} calls, ms / peak MiB "
          f"({report['cells'][0]['memory_measure'] if report['cells'] and 'memory_measure' in report['cells'][0] else 'memory'}); "
          f"'-' skipped ({report['device']})")
    print(f"{'rate':>6s} {'s':>5s} {'b':>2s} " + " ".join(f"{name:>15s}" for name in losses))
    rows: dict[tuple, dict] = {}
    for cell in report["cells"]:
        rows.setdefault((cell["sample_rate"], cell["seconds"], cell["batch"]), {})[cell["loss"]] = cell
    for (rate, length, batch), by_loss in rows.items():
        entries = []
        for name in losses:
            cell = by_loss.get(name)
            entries.append(f"{'-':>15s}" if cell is None or cell["ms"] is None
                           else f"{cell['ms']:8.1f}/{cell['peak_mib']:6.0f}")
        print(f"{rate:6d} {length:5.2f} {batch:2d} " + " ".join(entries))
    skipped = [c for c in report["cells"] if c["skipped"]]
    for cell in skipped:
        print(f"skipped {cell['loss']} {cell['sample_rate']} Hz {cell['seconds']} s x{cell['batch']}: {cell['skipped']}")
    for name, description in report["losses"].items():
        print(f"  {name}: {description}")


# --- operation counts: the CUDA path's launch budget, counted on the CPU ---------------------------

OPS_SCHEMA = "pal-bench-ops/1"
OPS_BATCHES = (1, 8)
# Our losses on the code path CUDA runs, and the matrix's peers (those as the matrix builds them).
OPS_LOSSES = {
    "perceptual": "PerceptualLoss(rate, compiled=False)",
    "perceptual-44k": "PerceptualLoss(rate, n_bands=128, taps=2048, stride=4, compiled=False)",
    "masked": "MaskedLoss(rate)",
    "masked+perceptual": "the registered blend, its PerceptualLoss compiled=False",
    "mrstft": MATRIX_LOSSES["mrstft"],
    "mel": MATRIX_LOSSES["mel"],
    "l1": MATRIX_LOSSES["l1"],
    "mse": MATRIX_LOSSES["mse"],
}


def on_cuda_path(loss: torch.nn.Module) -> torch.nn.Module:
    """``loss`` with every :class:`PerceptualLoss` in it off the CPU's compiled kernels: on the CPU
    ``compiled=False`` runs exactly the operations CUDA runs (the kernels are CPU-only)."""
    from perceptual_audio_loss import PerceptualLoss

    for module in loss.modules():
        if isinstance(module, PerceptualLoss):
            module.compiled = False
    return loss


def ops_loss(name: str, rate: int) -> torch.nn.Module:
    """The loss ``name`` of :data:`OPS_LOSSES` on its CUDA path."""
    if name == "masked+perceptual":
        from perceptual_audio_loss import build_loss

        return on_cuda_path(build_loss(name, rate))
    return on_cuda_path(matrix_loss(name, rate))


def loss_call_ops(name: str, batch: int, device: str = "cpu") -> dict:
    """Operations of one forward+backward of ``name`` on ``(batch, 1, 8192)`` at 11025 Hz."""
    from .opcount import forward_backward_ops

    generator = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(batch, 1, WINDOW, generator=generator)
    y = 0.1 * torch.randn(batch, 1, WINDOW, generator=generator)
    counted = forward_backward_ops(ops_loss(name, SAMPLE_RATE).to(device), x.to(device), y.to(device))
    return {"loss": name, "batch": batch, "ops": counted.total, "views": counted.views}


def training_iteration_ops(clips=None, losses=EXPERIMENT_LOSSES, device: str = "cpu") -> dict:
    """Operations of one training iteration of ``pal run``'s default run (its clips x mse and
    perceptual) as CUDA runs it: every loss on its CUDA path, the generators in the ``"grouped"``
    mode, fused Adam.

    The third iteration of :func:`~pal.train.train_batched` itself is counted: from the end of the
    second to the end of the third (the first also builds Adam's state; no checkpoint, save or
    read of the run's health falls between)."""
    from perceptual_audio_loss import build_loss

    from .clips import DEFAULT_CLIPS
    from .opcount import OpCounter
    from .train import RunSpec, train_batched

    clips = tuple(clips or DEFAULT_CLIPS)
    runs = [RunSpec(target, loss, 0) for target in range(len(clips)) for loss in losses]
    modules = {name: on_cuda_path(build_loss(name, SAMPLE_RATE)) for name in losses}
    targets = post_targets(clips)
    totals: dict[int, tuple[int, int]] = {}  # (ops, views) counted by the end of each iteration

    def at_end_of(iteration: int, _history) -> None:
        totals[iteration] = (counter.total, counter.views)

    with OpCounter() as counter:
        train_batched(targets, runs, modules, iterations=3, checkpoint_every=3, device=device, stack_mode="grouped",
                      fused_adam=True, on_progress=at_end_of)
    ops, views = (totals[3][i] - totals[2][i] for i in range(2))
    return {"clips": list(clips), "losses": list(losses), "runs": len(runs), "stack_mode": "grouped",
            "ops": ops, "views": views}


def bench_ops(losses=None, batches=None, iteration: bool = True, device: str = "cpu") -> dict:
    """Operation counts per loss call (each of ``losses`` at each of ``batches``) and, with
    ``iteration``, per training iteration of the default run."""
    calls = []
    for name in losses or OPS_LOSSES:
        for batch in batches or OPS_BATCHES:
            calls.append(loss_call_ops(name, batch, device))
            print(f"  counted {name} x{batch}: {calls[-1]['ops']} ops", file=sys.stderr, flush=True)
    return {"schema": OPS_SCHEMA, "torch": torch.__version__, "device": device, "sample_rate": SAMPLE_RATE,
            "samples": WINDOW,
            "losses": {name: OPS_LOSSES[name] for name in dict.fromkeys(c["loss"] for c in calls)},
            "per_call": calls, "per_iteration": training_iteration_ops(device=device) if iteration else None}


def print_ops(report: dict, described: dict | None = None) -> None:
    """The counts as a table; a loss described in ``described`` (the matrix's) as here is not again."""
    batches = list(dict.fromkeys(c["batch"] for c in report["per_call"]))
    print(f"aten operations dispatched per forward+backward, {report['sample_rate']} Hz, {report['samples']} samples,")
    print(f"on the CUDA path, counted on {report['device']} (views, which launch nothing, in brackets):")
    print(f"  {'loss':18s} " + " ".join(f"{'batch ' + str(b):>17s}" for b in batches))
    rows: dict[str, dict] = {}
    for call in report["per_call"]:
        rows.setdefault(call["loss"], {})[call["batch"]] = call
    for name, by_batch in rows.items():
        print(f"  {name:18s} " + " ".join(f"{by_batch[b]['ops']:>9,d} ({by_batch[b]['views']:>5,d})" for b in batches))
    iteration = report["per_iteration"]
    if iteration:
        print(f"per training iteration of the default run ({len(iteration['clips'])} clips x "
              f"{', '.join(iteration['losses'])}, {iteration['runs']} runs, {iteration['stack_mode']} stack): "
              f"{iteration['ops']:,d} ({iteration['views']:,d})")
    for name, description in report["losses"].items():
        if (described or {}).get(name) != description:
            print(f"  {name}: {description}")


# --- printing -----------------------------------------------------------------------------------


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


def checked(check, flag: str):
    """An argparse type that reads a flag's text through one of :mod:`pal.config`'s checks
    (:class:`~pal.config.Number` or :class:`~pal.config.NumberList`), so a bad value is one line."""
    import argparse

    from .errors import UserError

    def parse(text: str):
        try:
            value = text if isinstance(check, NumberList) else int(text) if check.kind is int else float(text)
            return check(value, flag, "the command line")
        except (ValueError, UserError):
            raise argparse.ArgumentTypeError(f"must be {check.describe()}, got {text!r}") from None

    return parse


# The bench's own bounds: enough for any honest measurement, never hours of a typo.
ITERATIONS_CHECK = Number(int, 1, 100_000)
ROUNDS_CHECK, REPEATS_CHECK, THREADS_CHECK = Number(int, 1, 100), Number(int, 1, 10_000), Number(int, 1, 1024)
RATES_CHECK = NumberList(Number(int, 8_000, 192_000), 1, 16, unique=True)
SECONDS_CHECK = NumberList(Number(float, 0.01, 600.0), 1, 16, unique=True)
BATCHES_CHECK = NumberList(Number(int, 1, 4096), 1, 16, unique=True)


def counted_ops(args, device: str) -> dict:
    """:func:`bench_ops` for the command line: ``--quick`` counts the quick grid's losses at batch 1
    and no training iteration; ``--losses`` and ``--batches`` choose as for the matrix."""
    losses = args.losses or (QUICK["losses"] if args.quick else None)
    batches = args.batches or (QUICK["batches"] if args.quick else None)
    return bench_ops(losses, batches, iteration=not args.quick, device=device)


def write_out(out: Path | None, report: dict) -> int:
    """Write ``report`` as JSON to ``--out`` if given: 0, or 2 with one line when it cannot be written."""
    if out is None:
        return 0
    from .files import atomic_write_text, failure

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    except OSError as error:
        sys.stderr.write(f"pal bench: error: cannot write --out ({failure(error)}); the table is printed above\n")
        return 2
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .cli import OneLineParser

    parser = OneLineParser(prog="pal bench")
    parser.add_argument("--iterations", type=checked(ITERATIONS_CHECK, "--iterations"), default=150,
                        help="iterations per run in the experiment section")
    parser.add_argument("--rounds", type=checked(ROUNDS_CHECK, "--rounds"), default=3,
                        help="rounds of the loss comparison; the experiment runs min(rounds, 2) times each (default 3)")
    parser.add_argument("--repeats", type=checked(REPEATS_CHECK, "--repeats"), default=7,
                        help="timed calls per variant per round, or per matrix cell")
    parser.add_argument("--threads", type=checked(THREADS_CHECK, "--threads"), default=torch.get_num_threads(),
                        help="torch threads for ours and for every child process (default: torch's)")
    parser.add_argument("--device", default=None, help="--matrix, --ops: cpu (default) or cuda")
    zounds_flags = parser.add_mutually_exclusive_group()
    zounds_flags.add_argument("--zounds", action="store_true", default=None,
                              help="compare with zounds 1.57.0 (the default when .venv-zounds exists)")
    zounds_flags.add_argument("--no-zounds", dest="zounds", action="store_false")
    parser.add_argument("--zounds-venv", type=Path, default=DEFAULT_ZOUNDS_VENV, help=argparse.SUPPRESS)
    parser.add_argument("--no-experiment", action="store_true", help="skip the whole-experiment comparison")
    parser.add_argument("--matrix", action="store_true", help="the cost table of losses x rates x lengths x batches")
    parser.add_argument("--out", type=Path, help="--matrix, --ops: write the table as JSON here")
    parser.add_argument("--quick", action="store_true", help="--matrix: a tiny grid (l1, mel; 11025 Hz, 0.75 s, batch 1)")
    parser.add_argument("--losses", type=lambda s: tuple(s.split(",")), help="--matrix, --ops: losses (default all)")
    parser.add_argument("--rates", type=checked(RATES_CHECK, "--rates"), help="--matrix: Hz, comma-separated")
    parser.add_argument("--seconds", type=checked(SECONDS_CHECK, "--seconds"), help="--matrix: lengths in seconds")
    parser.add_argument("--batches", type=checked(BATCHES_CHECK, "--batches"), help="--matrix: batch sizes")
    parser.add_argument("--ops", action="store_true",
                        help="only the operation counts of the CUDA path, counted here (a minute on 2 cores): "
                             "per loss call at batches 1 and 8, per training iteration of the default run")
    parser.add_argument("--matrix-cell", help=argparse.SUPPRESS)
    parser.add_argument("--sweep", action="store_true", help="only the sweep throughput: 1 against 2 workers")
    parser.add_argument("--executors", default="local,ray", help="for --sweep: local, ray or both (default)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.matrix_cell:
        cell = json.loads(args.matrix_cell)
        print(json.dumps(measure_cell(cell["loss"], cell["sample_rate"], cell["seconds"], cell["batch"],
                                      args.device or "cpu", args.repeats)))
        return 0
    if args.sweep:
        report = {"machine": machine(), "sweep": bench_sweep(args.iterations, args.rounds, args.executors.split(","))}
        print_sweep(report["sweep"])
        print("BENCH_JSON " + json.dumps(report))
        return 0
    if args.ops:
        unknown = set(args.losses or ()) - set(OPS_LOSSES)
        if unknown:
            parser.error(f"unknown losses {sorted(unknown)}; choose from {', '.join(OPS_LOSSES)}")
        from .config import resolve_device

        report = counted_ops(args, str(resolve_device(args.device or "cpu")))
        print_ops(report)
        return write_out(args.out, report)
    if args.matrix:
        from .config import resolve_device

        device = str(resolve_device(args.device or "cpu"))
        unknown = set(args.losses or ()) - set(MATRIX_LOSSES)
        if unknown:
            parser.error(f"unknown losses {sorted(unknown)}; choose from {', '.join(MATRIX_LOSSES)}")
        grid = matrix_grid(device, args.quick, args.losses, args.rates, args.seconds, args.batches)
        report = bench_matrix(device, 1 if args.quick else args.repeats, args.threads, grid)
        print_matrix(report)
        report["ops"] = counted_ops(args, device)
        print()
        print_ops(report["ops"], described=report["losses"])
        return write_out(args.out, report)
    if args.device not in (None, "cpu"):
        parser.error("the zounds comparison runs on the CPU (zounds' harness is CPU-only); --device is for --matrix")
    zounds = zounds_python(args.zounds_venv) if args.zounds is not False else None
    report = {"machine": machine(), "device": "cpu", "threads": args.threads, "iterations": args.iterations,
              "rounds": min(args.rounds, 2)}
    if zounds is None and args.zounds is not False:
        report["zounds_missing"] = MISSING_ZOUNDS.format(venv=args.zounds_venv)
    elif zounds is None:
        report["zounds_missing"] = "zounds baseline skipped (--no-zounds)"
    report["loss"] = bench_loss(zounds, args.rounds, args.repeats, args.threads)
    report["full_band"] = bench_full_band(args.rounds, args.repeats)
    report["crossover"] = bench_crossover(torch.device("cpu"), args.repeats)
    if zounds and not args.no_experiment:
        report["experiment"] = bench_experiment(zounds, args.iterations, report["rounds"], args.threads)
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``pal bench --matrix``: forward+backward time and peak memory of the library's losses and their
peers (auraloss's MR-STFT, a DAC-style multi-scale mel loss, L1, MSE) over sample rates, lengths
and batch sizes, each CPU cell in a fresh process so its memory is its own."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from .common import gradient_step, machine, thread_env, time_interleaved

MATRIX_LOSSES = {
    "perceptual": "PerceptualLoss(rate): the post's configuration, 512 Bark bands, 512 taps, stride 1",
    # Same filter duration (2048 taps = 46 ms at 44.1 kHz, the post's 512 taps at 11025 Hz) and the
    # same feature frame rate (stride 4: 11025 frames/s at 44.1 kHz) as the post, with a quarter of
    # its bands: 128 Bark-spaced bands are still ~5 per critical band (~25 Bark up to 22 kHz).
    "perceptual-44k": "PerceptualLoss(rate, n_bands=128, taps=2048, stride=4): for 44.1/48 kHz",
    "masked": "MaskedLoss(rate), target transformed every call",
    "auditory": "AuditorySpectrogramLoss(rate): ERB bands and every bin at 46/23/12/6 ms, compared by level",
    "mrstft": "auraloss.freq.MultiResolutionSTFTLoss(), its defaults",
    "mel": "pal.losses.mel.MultiScaleMelLoss(rate): DAC's recipe, windows 32..2048, 5..320 mel bands",
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
    from perceptual_audio_loss import AuditorySpectrogramLoss, MaskedLoss, PerceptualLoss

    if name == "perceptual":
        return PerceptualLoss(rate)
    if name == "perceptual-44k":
        return PerceptualLoss(rate, n_bands=128, taps=2048, stride=4)
    if name == "masked":
        return MaskedLoss(rate)
    if name == "auditory":
        return AuditorySpectrogramLoss(rate)
    if name == "mrstft":
        import auraloss

        return auraloss.freq.MultiResolutionSTFTLoss()
    if name == "mel":
        from ..losses.mel import MultiScaleMelLoss

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

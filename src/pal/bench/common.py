"""What every benchmark of ``pal bench`` shares: the post's settings, the clips' windows, timing
by turns, whole-process runs and the machine's description."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 11025


WINDOW = 8192


EXPERIMENT_CLIPS = ("speech", "piano", "drums")


EXPERIMENT_LOSSES = ("mse", "perceptual")


REPO_ROOT = Path(__file__).resolve().parents[3]


def post_targets(names=EXPERIMENT_CLIPS) -> torch.Tensor:
    """The built-in clips' target windows as ``pal run`` prepares them: ``(clips, 1, 8192)``."""
    from ..core.audio import prepare_clip
    from ..clips import builtin_clip

    windows = [prepare_clip(name, *builtin_clip(name), name).samples for name in names]
    return torch.from_numpy(np.stack(windows)).unsqueeze(1)


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

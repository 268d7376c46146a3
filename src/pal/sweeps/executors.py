"""Where shards run: worker processes on this machine, or tasks on a Ray cluster.

Both take the shards still to do and call ``on_done(name, result)`` / ``on_failed(name, reason)``
as each ends; one shard failing (an exception, a killed worker) never stops the others.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from ..core.errors import UserError
from .plan import Shard
from .shard import run_shard, shard_clips

Done = Callable[[str, dict], None]
Failed = Callable[[str, str], None]
Started = Callable[[str], None]


def thread_environment(threads: int) -> dict[str, str]:
    """Thread counts for every numeric library a shard uses. BLAS sums split across threads
    round differently, so a shard runs with the same count wherever it runs."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def run_local(sweep_dir: Path, shards: list[Shard], workers: int, threads: int, on_start: Started, on_done: Done,
              on_failed: Failed) -> None:
    """Each shard in its own Python process, ``workers`` at a time: a process that dies takes only
    its own shard with it."""
    pending = list(shards)
    running: dict[str, subprocess.Popen] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                shard = pending.pop(0)
                running[shard.name] = subprocess.Popen(
                    [sys.executable, "-m", "pal.sweeps.worker", str(sweep_dir), shard.name],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env=os.environ | thread_environment(threads))
                on_start(shard.name)
            time.sleep(0.05)
            for name, process in list(running.items()):
                if process.poll() is None:
                    continue
                out, err = process.communicate()
                del running[name]
                if process.returncode == 0:
                    on_done(name, json.loads(out.strip().splitlines()[-1]))
                else:
                    reason = (err.strip().splitlines() or [f"exit status {process.returncode}"])[-1]
                    on_failed(name, reason if process.returncode > 0 else f"killed by signal {-process.returncode}")
    finally:
        for process in running.values():  # Ctrl-C: stop the workers; their shards resume next time
            process.kill()
            process.wait()


# Seconds to wait for a Ray cluster's address to accept a connection. Ray itself keeps retrying an
# unreachable address for over a minute with no word; a cluster that is up answers in milliseconds.
CONNECT_TIMEOUT_S = 5.0
RAY_DEFAULT_PORT = 6379  # the head node's GCS port when an address names none (Ray's own default)


def check_ray_address(address: str | None) -> None:
    """One line, within :data:`CONNECT_TIMEOUT_S`, for a Ray address nothing answers at.

    ``host:port`` and ``ray://host:port`` are tried with one TCP connection, before Ray is asked;
    no address (start a local Ray) and ``auto`` (Ray finds a local cluster itself) pass.
    """
    if not address or address in ("auto", "local"):
        return
    where = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = where.hostname, where.port or RAY_DEFAULT_PORT
    except ValueError:  # a port that is not a number in 0..65535
        host = None
    if not host:
        raise UserError(f"--address {address!r} is not host:port or ray://host:port")
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise UserError(f"cannot reach Ray at {address}: {reason} (waited up to {CONNECT_TIMEOUT_S:g} s); is the "
                        "cluster up and the address right?") from None


def run_ray(sweep_dir: Path, shards: list[Shard], plan: tuple, address: str | None, workers: int,
            on_start: Started, on_done: Done, on_failed: Failed) -> None:
    """Each shard of a window sweep a Ray task (:func:`run_ray_tasks`); the targets travel with the tasks."""
    record, windows, targets = plan
    settings = record["settings"]
    calls = {shard.name: (str(Path(sweep_dir).resolve()), vars(shard), shard_clips(shard, windows, targets), settings)
             for shard in shards}
    gpus = 1 if settings["device"].startswith("cuda") else 0
    run_ray_tasks(run_shard, calls, settings["threads_per_task"], gpus, address, workers, on_start, on_done, on_failed)


def run_ray_tasks(function: Callable, calls: dict[str, tuple], threads: int, gpus: int, address: str | None,
                  workers: int, on_start: Started, on_done: Done, on_failed: Failed) -> None:
    """``function(*arguments)`` for each shard of ``calls`` (name -> arguments), a Ray task declaring
    ``threads`` CPUs (and ``gpus`` GPUs) with its numeric libraries' threads fixed to ``threads``.

    ``address``: an existing cluster (``auto``, ``ray://host:10001``, ``host:6379``); without it a
    Ray instance already started in this process is used, or a local one with ``workers`` CPUs.
    The sweep folder must be on storage every node writes to.
    """
    try:
        import ray
    except ImportError:
        raise UserError("the Ray executor needs Ray: pip install 'perceptual-audio-loss[ray]'") from None
    if not ray.is_initialized():  # the address was tried by run_sweep, before the folder was touched
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise UserError(f"cannot start or reach Ray{' at ' + address if address else ''}: "
                            f"{str(error).splitlines()[0]}") from None
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0,
                      runtime_env={"env_vars": thread_environment(threads)})(function)
    futures = {}
    for name, arguments in calls.items():
        futures[task.options(name=f"pal-{name}").remote(*arguments)] = name
        on_start(name)
    try:
        while futures:
            ready, _ = ray.wait(list(futures), num_returns=1, timeout=1.0)
            for future in ready:
                name = futures.pop(future)
                try:
                    on_done(name, ray.get(future))
                except ray.exceptions.RayError as error:
                    on_failed(name, _ray_reason(error))
    finally:
        for future in futures:
            ray.cancel(future, force=True)


def _ray_reason(error) -> str:
    cause = getattr(error, "cause", None)
    if cause is not None and str(cause).strip():
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else 'worker lost'}"

"""``pal bench``'s one command line over its benchmarks; prints tables and, for the default and
``--sweep``, a last line ``BENCH_JSON {...}`` for machines to read."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..core.commandline import OneLineParser
from ..run.config import Number, NumberList
from .common import machine
from .matrix import MATRIX_LOSSES, QUICK, bench_matrix, matrix_grid, measure_cell, print_matrix
from .ops import OPS_LOSSES, bench_ops, print_ops
from .sweep import bench_sweep, print_sweep
from .zounds import DEFAULT_ZOUNDS_VENV, MISSING_ZOUNDS, bench_crossover, bench_experiment, bench_full_band, bench_loss, print_report, zounds_python

def checked(check, flag: str):
    """An argparse type that reads a flag's text through one of :mod:`pal.run.config`'s checks
    (:class:`~pal.run.config.Number` or :class:`~pal.run.config.NumberList`), so a bad value is one line."""
    import argparse

    from ..core.errors import UserError

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
    from ..core.files import atomic_write_text, failure

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    except OSError as error:
        sys.stderr.write(f"pal bench: error: cannot write --out ({failure(error)}); the table is printed above\n")
        return 2
    print(f"wrote {out}")
    return 0


def build_parser():
    """``pal bench``'s options: which benchmark (the default, ``--matrix``, ``--ops``, ``--sweep``) and its sizes."""
    import argparse

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
    parser.add_argument("--codec", action="store_true", help="only pal codec's training step per loss (model "
                        "included), its time against MR-STFT's and its operations; --losses, --repeats, --device, --out")
    parser.add_argument("--executors", default="local,ray", help="for --sweep: local, ray or both (default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
    if args.codec:
        return run_codec(parser, args)
    if args.ops:
        return run_ops(parser, args)
    if args.matrix:
        return run_matrix(parser, args)
    return run_zounds_comparison(parser, args)


def refuse_unknown_losses(parser, args, known) -> None:
    """A ``--losses`` naming a loss the benchmark does not know is a usage error naming it."""
    unknown = set(args.losses or ()) - set(known)
    if unknown:
        parser.error(f"unknown losses {sorted(unknown)}; choose from {', '.join(known)}")


def run_codec(parser, args) -> int:
    """``--codec``: the codec step per loss, printed and written to ``--out``."""
    from ..run.config import resolve_device
    from .codec import bench_codec, codec_losses, print_codec

    refuse_unknown_losses(parser, args, codec_losses())
    report = {"machine": machine(), "codec": bench_codec(args.losses, args.repeats,
                                                          str(resolve_device(args.device or "cpu")))}
    print_codec(report["codec"])
    return write_out(args.out, report)


def run_ops(parser, args) -> int:
    """``--ops``: the operation counts, printed and written to ``--out``."""
    refuse_unknown_losses(parser, args, OPS_LOSSES)
    from ..run.config import resolve_device

    report = counted_ops(args, str(resolve_device(args.device or "cpu")))
    print_ops(report)
    return write_out(args.out, report)


def run_matrix(parser, args) -> int:
    """``--matrix``: the cost table and the operation counts, printed and written to ``--out``."""
    from ..run.config import resolve_device

    device = str(resolve_device(args.device or "cpu"))
    refuse_unknown_losses(parser, args, MATRIX_LOSSES)
    grid = matrix_grid(device, args.quick, args.losses, args.rates, args.seconds, args.batches)
    report = bench_matrix(device, 1 if args.quick else args.repeats, args.threads, grid)
    print_matrix(report)
    report["ops"] = counted_ops(args, device)
    print()
    print_ops(report["ops"], described=report["losses"])
    return write_out(args.out, report)


def run_zounds_comparison(parser, args) -> int:
    """The default: the loss, the full band, the crossover and (with zounds) the whole experiment, on the CPU."""
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

"""``pal``: the command line."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from .core.commandline import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_RUN_FAILED, OneLineParser
from .core.errors import UserError
from .core.locks import check_not_being_written


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def integer_list(text: str) -> list[int]:
    try:
        return [int(item) for item in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated integers: {text!r}") from None


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def builtin_clips_help() -> str:
    """``pal run``'s help on its clips, naming the built-in clips from their registry."""
    from .clips import BUILTIN_CLIPS, DEFAULT_CLIPS

    others = [name for name in BUILTIN_CLIPS if name not in DEFAULT_CLIPS]
    return (f"audio files, folders, or built-in clip names: {', '.join(DEFAULT_CLIPS)} (real recordings, "
            f"the clips used when none are given) or {', '.join(others)} (synthetic stand-ins)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pal", description="Perceptual audio loss: the 2018 experiment and its page.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add_parser in (add_run_parser, add_codec_parser, add_report_parser, add_listen_parser, add_sweep_parser,
                       add_summarize_parser, add_compare_parser, add_bench_parser):
        add_parser(commands)
    return parser


def add_run_parser(commands) -> None:
    from .run.config import add_setting_flags

    # Flags default to None so that a --config file's values stand unless a flag is given.
    run = commands.add_parser("run", help="fit the generator to clips under several losses; "
                              "on an unfinished run folder of the same configuration, resume it")
    run.add_argument("clips", nargs="*", help=builtin_clips_help())
    run.add_argument("--config", type=Path, help="a TOML file of settings (keys as the flags, with _ for -)")
    add_setting_flags(run, "run", integer)
    run.add_argument("--seed", type=integer, help="one seed, the same as --seeds N")
    run.add_argument("--out", type=Path, default=None, help="run folder (default runs/<date-time>)")
    run.add_argument("--force", action="store_true", help="replace a run of another configuration in --out, "
                     "or start an unfinished one again")
    run.add_argument("--no-progress", action="store_true", help="no progress display")


def add_codec_parser(commands) -> None:
    from .codec.config import CodecConfig
    from .run.config import add_setting_flags

    codec = commands.add_parser("codec", help="train a small neural codec with each loss on a corpus and judge "
                                "it on test files no model saw; on an unfinished codec folder of the same "
                                "configuration, resume it")
    codec.add_argument("--config", type=Path, help="a TOML file of settings (keys as the flags, with _ for -), "
                       "such as the research grid conf/codec-grid.toml")
    add_setting_flags(codec, "codec", integer, CodecConfig)
    codec.add_argument("--out", type=Path, default=None, help="codec run folder (default runs/codec-<date-time>)")
    codec.add_argument("--force", action="store_true", help="replace a codec run of another configuration in --out")
    codec.add_argument("--no-progress", action="store_true", help="no progress display")


def add_report_parser(commands) -> None:
    report = commands.add_parser("report", help="rebuild a run folder's page from its files")
    report.add_argument("run_dir", type=Path)


def add_listen_parser(commands) -> None:
    listen = commands.add_parser("listen", help="serve a blind listening test (MUSHRA or A/B preference) over a "
                                 "run's audio, or a codec run's decodes; --results prints what raters said")
    listen.add_argument("run_dir", type=Path, help="a pal run folder, or a pal codec folder")
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    listen.add_argument("--port", type=integer, default=8765, help="default 8765")
    listen.add_argument("--checkpoint", type=integer, help="iteration whose generations are rated, or a codec run's "
                        "step whose decodes are (default: the last)")
    listen.add_argument("--width", type=integer, help="a codec run's width whose models are rated (default: its largest)")
    listen.add_argument("--train-seconds", help="a codec run's amount of training data whose models are rated: all "
                        "or seconds (default: its most, all where it has it)")
    listen.add_argument("--mode", default="mushra", help="mushra (default) or preference (forced-choice A/B)")
    listen.add_argument("--compare", type=comma_list, help="losses to include (default: all for mushra, the run's "
                        "first two for preference)")
    listen.add_argument("--results", action="store_true", help="print the ratings' summary and add it to the page")


def add_sweep_parser(commands) -> None:
    from .run.config import add_setting_flags
    from .sweeps.plan import MANY_WINDOWS, own_settings

    sweep = commands.add_parser("sweep", help="fit many clips' windows under several losses and seeds, in shards, "
                                "on this machine or on Ray; rerun the same command to resume")
    sweep.add_argument("data", nargs="*", help="audio files, folders (searched recursively) or text files listing paths")
    sweep.add_argument("--codec", type=Path, metavar="GRID", help="a codec grid instead: a TOML file of pal codec's "
                       "settings (losses, width, train_seconds, seeds... as conf/codec-grid.toml), each shard a "
                       "pal codec run, merged into one codec run folder in --out")
    sweep.add_argument("--out", type=Path, required=True, help="the sweep folder")
    add_setting_flags(sweep, "sweep", integer)
    for declared in own_settings():
        sweep.add_argument(declared.metadata["flag"], dest=declared.name, type=integer, default=declared.default,
                           help=f"{declared.metadata['help']} (default {declared.default})")
    sweep.add_argument("--allow-many-windows", action="store_true", help=f"allow cutting one clip into "
                       f"{MANY_WINDOWS} windows or more (refused otherwise, as a likely typo)")
    sweep.add_argument("--executor", default="local", help="local (default) or ray")
    sweep.add_argument("--address", help="Ray cluster to join (default: start a local Ray instance)")
    sweep.add_argument("--workers", type=integer, help="shards at once on this machine (default: CPUs / threads per task)")
    sweep.add_argument("--force", action="store_true", help="replace a different sweep in --out")
    sweep.add_argument("--no-progress", action="store_true")


def add_summarize_parser(commands) -> None:
    summarize = commands.add_parser("summarize", help="rebuild a sweep's metrics table and page from its shards")
    summarize.add_argument("sweep_dir", type=Path)


def add_compare_parser(commands) -> None:
    compare = commands.add_parser("compare", help="finished runs side by side: each claim's measure as a Markdown "
                                  "table, a row per clip, a column per (folder, loss), mean ± 95 %% interval over seeds")
    compare.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_FOLDER")
    compare.add_argument("--at", type=integer_list, metavar="ITERATIONS",
                         help="comma-separated checkpoints to compare at (default: the last every folder measured)")
    compare.add_argument("--focus", metavar="LABEL", help="a column (a loss, or prefix: loss) to sum up under each "
                         "table: rows where it has the best mean, and where another beats it with intervals apart")
    compare.add_argument("--names", type=comma_list, metavar="NAMES",
                         help="comma-separated column names, one per column in order (default: the losses' labels)")
    compare.add_argument("--over-clips", action="store_true",
                         help="end each table with every column's mean over the clips (those every column measured)")


def add_bench_parser(commands) -> None:
    bench = commands.add_parser("bench", help="speed and memory against the 2018 way (pal bench --help)",
                                add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)


def command_run(args: argparse.Namespace) -> int:
    from datetime import datetime

    from .run.config import ExperimentConfig, checked_settings, read_config_file, settings_from_flags
    from .report.page import build_report
    from .run.experiment import run_experiment

    settings = read_config_file(args.config) if args.config else {}
    out_from_file = settings.pop("out", None)
    out = args.out or out_from_file or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.seed is not None and args.seeds is not None:  # as a TOML file with both keys is refused
        raise UserError("give --seed or --seeds, not both")
    flags = {"clips": args.clips or None, "seed": args.seed}
    settings |= checked_settings({k: v for k, v in flags.items() if v is not None}, "command line")
    settings |= settings_from_flags(args, "run")
    outcome = run_experiment(ExperimentConfig(**settings), out, force=args.force, progress=not args.no_progress,
                             page=build_report)
    if outcome.already_finished:
        print(f"{out}: this run had already finished; page rebuilt")
    elif outcome.resumed_from:
        print(f"{out}: resumed after iteration {outcome.resumed_from}")
    for failure in outcome.failed:
        sys.stderr.write(f"pal: run failed: {failure}\n")
    if outcome.claims:
        print(outcome.claims)
    print(f"report: {outcome.report}")
    return EXIT_RUN_FAILED if outcome.failed else 0


def command_codec(args: argparse.Namespace) -> int:
    from datetime import datetime

    from .codec.config import CodecConfig
    from .codec.experiment import run_codec
    from .report.codec_page import build_codec_page
    from .run.config import read_config_file, settings_from_flags

    settings = read_config_file(args.config, CodecConfig) if args.config else {}
    out = args.out or settings.pop("out", None) or Path("runs") / datetime.now().strftime("codec-%Y%m%d-%H%M%S")
    settings.pop("out", None)
    config = CodecConfig(**(settings | settings_from_flags(args, "codec", CodecConfig)))
    outcome = run_codec(config, out, force=args.force, progress=not args.no_progress, page=build_codec_page)
    if outcome.already_finished:
        print(f"{out}: this codec run had already finished; page rebuilt")
    elif outcome.resumed_from:
        print(f"{out}: resumed after step {outcome.resumed_from}")
    for failure in outcome.failed:
        sys.stderr.write(f"pal: model failed: {failure}\n")
    print(f"page: {outcome.page}")
    return EXIT_RUN_FAILED if outcome.failed else 0


@contextmanager
def write_errors_named(folder: Path, doing: str, kept: str):
    """A write that fails (full or read-only disk, I/O error) as one line: the folder, what was
    being written and why it failed, then what is kept and what to do."""
    from .core.files import failure

    try:
        yield
    except OSError as error:
        raise UserError(f"{folder}: {doing} failed ({failure(error, folder)}); {kept}") from None


def command_report(args: argparse.Namespace) -> int:
    from .report.page import build_report

    if not args.run_dir.is_dir():
        raise UserError(f"{args.run_dir}: no such run folder")
    check_not_being_written(args.run_dir, "run")
    with write_errors_named(args.run_dir, "writing the page", "nothing in the run is lost: free space and run "
                            "pal report again"):
        page = build_report(args.run_dir)
    print(f"report: {page}")
    return 0


def command_listen(args: argparse.Namespace) -> int:
    from .codec.folder import CodecFolder
    from .listening.design import listening_folder, load_stimuli

    if not args.run_dir.is_dir():
        raise UserError(f"{args.run_dir}: no such run folder")
    codec = CodecFolder(args.run_dir).is_run()
    check_not_being_written(args.run_dir, "codec run" if codec else "run")
    listening_folder(args.run_dir, args.width, args.train_seconds)  # --width on a run folder refused, with --results too
    if args.results:
        from .listening.results import write_page_section
        from .report.codec_page import build_codec_page
        from .report.page import build_report

        with write_errors_named(args.run_dir, "writing the listening results", "the ratings and the run are kept: "
                                "free space and run this again"):
            text = write_page_section(args.run_dir)
            page = (build_codec_page if codec else build_report)(args.run_dir) if text is not None else None
        if text is None:
            print(f"{args.run_dir}: no ratings yet (start a test with: pal listen {args.run_dir})")
            return 0
        print(text)
        print(f"report: {page}")
        return 0
    if not args.host.strip():
        raise UserError("--host is empty; give an address (127.0.0.1 for this machine only)")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    from .listening.server import serve

    stimuli = load_stimuli(args.run_dir, args.mode, args.checkpoint, args.compare, args.width, args.train_seconds)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write(f"pal: note: serving on {args.host}: anyone who can reach it can take the test\n")
    serve(stimuli, args.host, args.port)
    return 0


def command_sweep(args: argparse.Namespace) -> int:
    from .run.config import settings_from_flags
    from .sweeps import SweepOverrides, SweepSettings, run_sweep
    from .sweeps.plan import own_settings
    from .run.sweep_folder import SWEEP_PAGE

    if args.codec is not None:
        return command_codec_sweep(args)
    if not args.data:
        raise UserError("pal sweep needs audio to sweep (files, folders or text files listing paths), "
                        "or --codec GRID for a codec grid")
    own = {declared.name: getattr(args, declared.name) for declared in own_settings()}
    settings = SweepSettings(**settings_from_flags(args, "sweep"), **own)
    with write_errors_named(args.out, "writing the sweep", "finished shards are kept: run the same command again "
                            "to resume"):
        outcome = run_sweep(args.data, settings, args.out, args.executor, args.address, args.workers,
                            progress=not args.no_progress,
                            overrides=SweepOverrides(force=args.force, many_windows=args.allow_many_windows))
    print(outcome.summary)
    print(f"page: {args.out / SWEEP_PAGE}")
    return _shards_failed(outcome)


def command_codec_sweep(args: argparse.Namespace) -> int:
    """``pal sweep --codec GRID``: the grid's settings from its file, the sweep's own from the flags."""
    from .codec.config import CodecConfig
    from .run.config import read_config_file, settings_from_flags
    from .sweeps.run import run_codec_sweep
    from .sweeps.plan import SweepSettings

    window_flags = [f"--{name.replace('_', '-')}" for name in settings_from_flags(args, "sweep")]
    if args.windows_per_clip != SweepSettings().windows_per_clip:
        window_flags.append("--windows-per-clip")
    if args.allow_many_windows:
        window_flags.append("--allow-many-windows")
    if args.data or window_flags:
        given = ", ".join([*(["audio to sweep"] if args.data else []), *window_flags])
        raise UserError(f"--codec {args.codec}: the grid file holds the codec sweep's settings and corpus; "
                        f"{given} are for window sweeps (set train, test, losses... in the grid file)")
    settings = read_config_file(args.codec, CodecConfig)
    settings.pop("out", None)  # pal codec --config's folder; the sweep's is --out
    with write_errors_named(args.out, "writing the sweep", "finished shards are kept: run the same command again "
                            "to resume"):
        outcome = run_codec_sweep(CodecConfig(**settings), args.out, args.executor, args.address, args.workers,
                                  args.runs_per_task, args.threads_per_task, progress=not args.no_progress,
                                  force=args.force)
    print(outcome.summary)
    if outcome.page is not None:
        print(f"page: {outcome.page}")
    return _shards_failed(outcome)


def _shards_failed(outcome) -> int:
    if outcome.failed:
        for name, reason in sorted(outcome.failed.items()):  # also when --no-progress kept the progress lines quiet
            sys.stderr.write(f"pal: shard failed: {name}: {reason}\n")
        sys.stderr.write(f"pal: {len(outcome.failed)} of {outcome.shards} shard(s) failed "
                         f"({', '.join(sorted(outcome.failed))}); run the same command again to redo them\n")
        return EXIT_RUN_FAILED
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from .report.codec_compare import compare_any

    print(compare_any(args.run_dirs, args.at, args.focus, args.names, args.over_clips))
    return 0


def command_summarize(args: argparse.Namespace) -> int:
    from .codec.folder import CodecFolder
    from .sweeps import summarize
    from .run.sweep_folder import SWEEP_PAGE

    if not args.sweep_dir.is_dir():
        raise UserError(f"{args.sweep_dir}: no such sweep folder")
    check_not_being_written(args.sweep_dir, "sweep")
    with write_errors_named(args.sweep_dir, "writing the sweep's summary", "the shards are kept: free space and "
                            "run pal summarize again"):
        summary = summarize(args.sweep_dir)
    codec_page = CodecFolder(args.sweep_dir).page  # a codec sweep's page is its merged codec run's
    print(summary)
    print(f"page: {codec_page if codec_page.is_file() else args.sweep_dir / SWEEP_PAGE}")
    return 0


# What the `app` extra installs; without it `pal` says so instead of failing on an import.
APP_MODULES = {"soundfile", "soxr", "matplotlib", "jinja2", "tqdm", "auraloss", "pystoi", "pesq", "fastapi",
               "uvicorn"}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in APP_MODULES:
            raise
        sys.stderr.write(f"pal: error: the application needs {error.name}: "
                         "pip install 'perceptual-audio-loss[app]'\n")
        return EXIT_BAD_INPUT


def _main(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:  # its own parser: argparse's REMAINDER refuses leading options
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    handlers = {"run": command_run, "codec": command_codec, "report": command_report, "listen": command_listen, "sweep": command_sweep,
                "summarize": command_summarize, "compare": command_compare}
    held = HeldWarnings()
    try:
        with held:
            status = handlers[args.command](args)
        held.show()
        return status
    except UserError as error:  # a refusal is its one line: warnings raised on the way to it are dropped
        sys.stderr.write(f"pal: error: {error}\n")
        return EXIT_BAD_INPUT
    except OSError as error:  # what no command names itself: still one line, naming the file
        where = f"{os.fsdecode(error.filename)}: " if error.filename else ""
        sys.stderr.write(f"pal: error: {where}{error.strerror or error}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        held.show()
        sys.stderr.write("pal: interrupted\n")
        return EXIT_INTERRUPTED


class HeldWarnings(warnings.catch_warnings):
    """Python's and torch's warnings, held while a command runs and shown after it (each distinct
    one once), so that a refusal stays one line on stderr: a warning on the way to it (a user's
    loss warning in its probe, torch on a tensor pal reports) is dropped with the command."""

    LIMIT = 20  # distinct warnings kept; a loss warning differently at every step is not a memory leak

    def __init__(self):
        super().__init__()
        self.held: dict[tuple, tuple] = {}

    def __enter__(self):
        super().__enter__()
        warnings.showwarning = self._hold
        return self

    def _hold(self, message, category, filename, lineno, file=None, line=None):
        key = (category, str(message))
        if key not in self.held and len(self.held) < self.LIMIT:
            self.held[key] = (message, category, filename, lineno)

    def show(self) -> None:
        for message, category, filename, lineno in self.held.values():
            warnings.showwarning(message, category, filename, lineno)
        self.held.clear()


if __name__ == "__main__":
    sys.exit(main())

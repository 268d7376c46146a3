"""What every ``pal`` command line shares: its exit statuses and a parser whose usage error is one
line (``pal`` itself in :mod:`pal.cli`, ``pal bench`` in :mod:`pal.bench.cli`)."""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_BAD_INPUT)

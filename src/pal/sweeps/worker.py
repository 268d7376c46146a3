"""The local executor's worker: ``python -m pal.sweeps.worker SWEEP_DIR SHARD``.

Runs one shard from the plan saved in the sweep folder and prints its result as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.errors import UserError
from ..core.files import failure
from .codec import is_codec_plan, run_codec_shard, shards_of
from .shard import load_plan, read_record, run_shard, shard_clips


def main(argv: list[str]) -> int:
    """Worker entry point: run the named shard of the sweep in ``argv[0]``."""
    sweep_dir, name = Path(argv[0]), argv[1]
    try:
        if is_codec_plan(record := read_record(sweep_dir)):
            shard = next(s for s in shards_of(record) if s.name == name)
            result = run_codec_shard(str(sweep_dir), vars(shard), record)
        else:
            record, windows, targets, shards = load_plan(sweep_dir)
            shard = next(s for s in shards if s.name == name)
            result = run_shard(str(sweep_dir), vars(shard), shard_clips(shard, windows, targets), record["settings"])
    except UserError as error:
        sys.stderr.write(f"pal sweep: {name}: {error}\n")
        return 2
    except OSError as error:  # the shard's state and checkpoints are kept: the next pal sweep resumes it
        sys.stderr.write(f"pal sweep: {name}: writing the shard failed ({failure(error, sweep_dir)})\n")
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

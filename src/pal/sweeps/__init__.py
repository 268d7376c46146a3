"""``pal sweep``: many clips, windows, losses and seeds, in shards, on this machine or on Ray.

- :mod:`.plan`: what to sweep over (audio, windows, shards) and :class:`SweepSettings`.
- :mod:`.shard`: the sweep folder's layout, and one shard trained into its run folder.
- :mod:`.executors`, :mod:`.worker`: where shards run (local processes, Ray tasks).
- :mod:`.run`: :func:`run_sweep`, the whole command: check, plan, run the shards, summarise.
- :mod:`.summary`: :func:`summarize`, the table, comparisons and page from the shards.
"""

from .plan import SweepSettings
from .run import SweepOutcome, SweepOverrides, run_sweep
from .summary import summarize

__all__ = ["SweepOutcome", "SweepOverrides", "SweepSettings", "run_sweep", "summarize"]

"""The sweep folder's names: this module spells every one of them (:mod:`pal.run.folder` spells a
shard's, :mod:`pal.sweeps.shard` reads and writes what they hold). Its own module, imported by
both the sweeps and :mod:`pal.run.sources`, which tells a sweep folder by its plan::

    sweep.json            the plan: settings, windows (source, offset), shards
    targets.npz           every window's target samples, as the shards train on them
    shards/shard-NNNN/    one run folder per shard (as pal run writes, without a page), done.json last
    (metrics table)       every run's measures, one row per window x loss x seed x checkpoint, named as a run's
    index.html            the sweep page: claims over the data set, paired comparisons, shards
"""

from .folder import METRICS

import re

SWEEP_FILE = "sweep.json"
TARGETS_FILE = "targets.npz"
SHARDS = "shards"
SHARD_NAME = re.compile(r"^shard-[0-9]{4,}$")  # as the plans name shards: never a path elsewhere
DONE_FILE = "done.json"
SWEEP_METRICS = METRICS  # the sweep's table has the name of a run's
SWEEP_PAGE = "index.html"

"""``pal bench``: our losses' speed and memory, side by side with zounds 1.57.0 and with their peers.

One command line (:mod:`pal.bench.cli`) over four benchmarks, a module each:

- :mod:`pal.bench.zounds`, the default: the perceptual loss and the 2018 experiment against zounds
  1.57.0, the post's own code;
- :mod:`pal.bench.matrix`, ``--matrix``: the cost table of the losses and their peers over rates,
  lengths and batches, with the operation counts beside it;
- :mod:`pal.bench.ops`, ``--ops``: the operations the CUDA path dispatches, counted on any machine;
- :mod:`pal.bench.sweep`, ``--sweep``: ``pal sweep`` throughput with one and two workers.

:mod:`pal.bench.common` holds what they share.
"""

from .cli import main

__all__ = ["main"]

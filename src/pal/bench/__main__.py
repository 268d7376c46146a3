"""``python -m pal.bench``: what the matrix's per-cell processes run."""

import sys

from .cli import main

sys.exit(main())

"""CPU thread defaults for the commands.

torch's intra-op pool and numba's parallel loops (the CPU rasterizer) share one OpenMP runtime
(libgomp). By default its threads spin at every barrier before they sleep; on a machine whose
cores are busy with other work, a descheduled thread stalls its whole team while the others
spin, and a journey segment took 40-57 s instead of 6-8 s (benchmarks/bench_threads.py, figures
in benchmarks/README.md). Waiting passively removes that (as fast as one thread there), so it
is the default; every thread count stays torch's own (one per core).
"""

from __future__ import annotations

import os

DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def configure_threads() -> None:
    """Set the OpenMP defaults; call before torch or numba is imported (the runtime reads them
    once, when it loads). A variable the user has set wins."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)

"""The cyclic garbage collector, set for a server that holds many streams open.

Measured with gc.callbacks (CPU time) in a `--workers 1` gateway holding 256 open 64 x 20 ms
streams: the collector tracked about 80 000 objects, of which about 72 000 were made by
start-up (modules, the app, its config) and live as long as the process; every ~20 s a full
collection walked all of them for ~100 ms of CPU and freed nothing, a pause longer than the gap
between two deltas of every stream.

- Once start-up is done, what it made is moved out of the collector's sight (`gc.freeze`).
- A young collection waits for `YOUNG_EVERY` objects instead of 700. Python counts allocations
  minus deallocations, so what a young collection walks is about what the open streams keep
  alive, not the threshold: at 128 streams (issue 18, gc.callbacks and a per-callback CPU
  probe) each one took 1-8 ms of CPU at 700, 8-19 ms at 5 000, 10-23 ms at 20 000, while the
  middle ones at 700 took 10-18 ms. What changed is how often: 136 collections (225-254 ms of
  CPU) in 15 s at 700, 6-9 (61-69 ms) at 5 000, 1 (10-23 ms) at 20 000. The longest pause stays
  the same, the collector's CPU falls tenfold, and a stream meets a pause a hundred times less.
  They freed nothing in any run.
- A full collection comes after `FULL_EVERY` middle ones, Python's default of 10 (it was 100
  while young collections came every 700): about 100 young collections, ~25 minutes at 128
  streams. Cycles made later are still collected, only later.
"""

from __future__ import annotations

import gc

YOUNG_EVERY = 20_000
MIDDLE_EVERY = 10
FULL_EVERY = 10


def settle() -> None:
    """Once start-up is done, before serving."""
    gc.collect()  # what start-up left as garbage is not kept for ever
    gc.freeze()
    gc.set_threshold(YOUNG_EVERY, MIDDLE_EVERY, FULL_EVERY)

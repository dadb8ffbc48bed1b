"""The cyclic garbage collector, set for a server that holds many streams open.

Measured with gc.callbacks (CPU time) in a `--workers 1` gateway holding 256 open 64 x 20 ms
streams: the collector tracked about 80 000 objects, of which about 72 000 were made by
start-up (modules, the app, its config) and live as long as the process; every ~20 s a full
collection walked all of them for ~100 ms of CPU and freed nothing, a pause longer than the gap
between two deltas of every stream.

- Once start-up is done, what it made is moved out of the collector's sight (`gc.freeze`).
- A full collection waits for 100 middle ones instead of 10 (`FULL_EVERY`): with start-up's
  objects frozen, full collections came twice as often (Python starts one when the objects
  promoted since the last exceed a quarter of those it kept, now few) and still cost 70 ms of
  CPU each at 256 streams, freeing nothing. Cycles that outlive two younger collections are
  rare here, so they wait longer, not for ever; cycles made later are still collected.
"""

from __future__ import annotations

import gc

FULL_EVERY = 100


def settle() -> None:
    """Once start-up is done, before serving."""
    gc.collect()  # what start-up left as garbage is not kept for ever
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)

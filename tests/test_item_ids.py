"""The names of an answer's parts (llms/chunks.py `new_item_id`): from the gateway's own
generator, so they leave the `random` module's shared state alone, and a forked worker's
differ from its parent's."""

from __future__ import annotations

import os
import random

from llms.chunks import new_item_id


def test_naming_parts_leaves_the_shared_random_state_alone() -> None:
    state = random.getstate()
    names = {new_item_id("msg_") for _ in range(100)}
    assert random.getstate() == state
    assert len(names) == 100
    assert all(len(name) == len("msg_") + 32 for name in names)


def test_a_forked_process_names_parts_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next name, to the parent
        try:
            os.write(write, new_item_id("fc_").encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 100).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    # Without the reseed the child's generator is the parent's copy: its next name is ours.
    assert child.startswith("fc_") and child != new_item_id("fc_")

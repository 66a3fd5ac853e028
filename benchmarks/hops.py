"""Hops: what one prepare+cleanup round trip costs the actors runtime, counted, not timed.

``python -m benchmarks.hops [ROUNDS]`` runs ``ROUNDS`` round trips (prepare, ``get``, cleanup,
``get``, from a plain thread as an agent calls, one volume, ``ZeroLatencyDriver``, tmpfs) and
prints, per round trip:

- messages: envelopes put into actor mailboxes;
- turns: actor turns queued on the workers' run queue (a message to an idle actor, an
  actor's start);
- futures: ``actors.Future`` objects made;
- sleeps: voluntary context switches of every thread of the process (from
  ``/proc/self/task/*/status``): each one is a thread going to sleep, so each is a later
  wake-up. This counts what the kernel saw, whatever the code meant to do.

The counts are exact for messages, turns and futures; sleeps vary a little with timing (a
worker that finds its next task already queued does not sleep).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from actors import _cell, _mailbox, _pool
from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import WAIT, scratch_dir
from benchmarks.workload import containers, isolator_on

__all__ = ["count"]


def _sleeps() -> int:
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except FileNotFoundError:  # a thread that exited meanwhile
            continue
    return total


@contextmanager
def _counting(owner: Any, name: str, counts: dict[str, int], key: str) -> Iterator[None]:
    original: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[key] += 1
        return original(*args, **kwargs)

    setattr(owner, name, counted)
    try:
        yield
    finally:
        setattr(owner, name, original)


def count(rounds: int = 200) -> dict[str, float]:
    """Messages, turns, futures and sleeps per round trip, over ``rounds`` round trips."""
    counts = {"messages": 0, "turns": 0, "futures": 0}
    with scratch_dir("/dev/shm", expect_tmpfs=True) as root:
        driver = ZeroLatencyDriver(f"{root}/mount-point")
        batch = containers(rounds + 20, volumes=1)
        with isolator_on(f"{root}/checkpoints", driver) as isolator:
            for cid, config, _ in batch[:20]:  # warm-up: first calls, thread starts
                isolator.prepare(cid, config).get(WAIT)
                isolator.cleanup(cid).get(WAIT)
            gc.collect()
            with (
                _counting(_mailbox.Mailbox, "put", counts, "messages"),
                _counting(_pool.WorkerPool, "submit", counts, "turns"),
                _counting(_cell.Cell, "__init__", counts, "futures"),
            ):
                before = _sleeps()
                for cid, config, _ in batch[20:]:
                    isolator.prepare(cid, config).get(WAIT)
                    isolator.cleanup(cid).get(WAIT)
                sleeps = _sleeps() - before
    result: dict[str, float] = {key: value / rounds for key, value in counts.items()}
    result["sleeps"] = sleeps / rounds
    return result


if __name__ == "__main__":
    print(json.dumps(count(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))

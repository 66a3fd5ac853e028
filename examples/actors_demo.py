"""A tour of the ``actors`` layer: futures, an actor, ``defer``, ``collect``, ``await_``,
``Sequence``.

Run: ``python examples/actors_demo.py``
"""

from __future__ import annotations

import functools
import threading
import time

import pykka

from actors import Actor, Future, Promise, Sequence, await_, collect, defer


class Storage(Actor):
    """An actor whose ``fetch`` answers later without blocking its own thread."""

    def __init__(self) -> None:
        super().__init__()
        self.served = 0

    def fetch(self, key: str, delay: float) -> Future[str]:
        promise: Promise[str] = Promise()
        # Work finishes elsewhere; the actor is free to take the next message meanwhile.
        threading.Timer(delay, promise.set, args=(f"value-of-{key}",)).start()
        self.served += 1
        return promise.future

    def count(self) -> int:
        return self.served


def main() -> None:
    started = time.monotonic()
    storage = Storage.start()
    proxy = storage.proxy()

    # Three slow fetches overlap: the actor never waits on any of them.
    fetches = [proxy.fetch(k, 0.2) for k in ("a", "b", "c")]
    print("collect:", collect(fetches).get(timeout=5))
    print(f"  three 0.2 s fetches took {time.monotonic() - started:.2f} s together")

    failing: Future[str] = Future.failed(RuntimeError("disk on fire"))
    outcomes = await_([Future.ready("ok"), failing]).get(timeout=5)
    print("await_:", [f.state.value for f in outcomes])

    on_actor = defer(storage, lambda note: f"{note} on {threading.current_thread().name}")
    print("defer:", on_actor("ran").get(timeout=5))

    sequence = Sequence()
    order: list[int] = []

    def step(index: int) -> int:
        order.append(index)
        return index

    items = [sequence.add(functools.partial(step, i)) for i in range(5)]
    collect(items).get(timeout=5)
    print("sequence ran in order:", order)
    sequence.stop().get(timeout=5)

    chained = proxy.count().then(lambda n: f"{n} fetches served")
    print("then:", chained.get(timeout=5))
    pykka.ActorRegistry.stop_all()


if __name__ == "__main__":
    main()

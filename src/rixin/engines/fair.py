"""Fair admission to an engine: work waits per project and is taken round-robin across projects.

Tenants are mutually untrusted (docs/security.md): one project sending 40 requests at once must
not make another project's single request wait behind all 40. The pool caps how many requests
a project may have in flight per model (429 beyond); inside the engine, the requests that wait
for a batch slot (llama.cpp) or for the model (serial engines) are taken from each project in
turn, FIFO within a project.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from contextlib import contextmanager
from typing import Callable, Generic, Hashable, Iterator, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Thread-safe queues keyed by project; `pop` serves the projects in turn."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queues: OrderedDict[Hashable, deque[T]] = OrderedDict()

    def put(self, key: Hashable, item: T, front: bool = False) -> None:
        with self._lock:
            q = self._queues.setdefault(key, deque())
            q.appendleft(item) if front else q.append(item)

    def pop(self, drop: Callable[[T], bool] = lambda item: False) -> T | None:
        """The head of the project whose turn it is (it then goes last), or None when empty.
        Items for which `drop` is true (cancelled while waiting) are discarded on the way."""
        with self._lock:
            while self._queues:
                key, q = next(iter(self._queues.items()))
                item = q.popleft()
                if q:
                    self._queues.move_to_end(key)
                else:
                    del self._queues[key]
                if not drop(item):
                    return item
            return None

    def remove(self, key: Hashable, item: T) -> bool:
        with self._lock:
            q = self._queues.get(key)
            if q is None or item not in q:
                return False
            q.remove(item)
            if not q:
                del self._queues[key]
            return True

    def count(self, keep: Callable[[T], bool] = lambda item: True) -> int:
        with self._lock:
            return sum(keep(item) for q in self._queues.values() for item in q)


class FairLock:
    """A lock whose waiters get it round-robin across projects (for engines that run one
    generation at a time). `cancelled` is polled while waiting: a caller that went away
    leaves the line instead of running once its turn comes."""

    POLL_S = 0.2

    def __init__(self):
        self._cond = threading.Condition()
        self._busy = False
        self._line: FairQueue[object] = FairQueue()
        self._turn: object | None = None

    @contextmanager
    def hold(self, key: Hashable, cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        ticket = object()
        with self._cond:
            if self._busy:
                self._line.put(key, ticket)
                while self._turn is not ticket:
                    self._cond.wait(self.POLL_S)
                    if self._turn is not ticket and cancelled() and self._line.remove(key, ticket):
                        from rixin.engines.base import Cancelled

                        raise Cancelled()
                self._turn = None
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._turn = self._line.pop()
                self._busy = self._turn is not None
                self._cond.notify_all()

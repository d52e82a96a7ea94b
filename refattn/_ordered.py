"""Adds from several tasks into shared rows, always in the order the tasks are listed.

The backward's row blocks of one head block all reach the same dK and dV rows. Float
addition is not associative: added in the order the worker threads happen to end them,
two calls with the same inputs disagree in the last bits. :class:`OrderedAdds` applies
each task's part in its turn, its place among the listed tasks of its head block. A task
that ends before its turn is parked (its parts copied) for the task before it to apply,
and its thread goes on to the next task; a thread whose parked parts already hold
:data:`PARKED_BYTES` waits for its turn instead. No task can wait on a later one because the
kernel hands tasks out in list order (:func:`refattn._kernel.for_each_task`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from refattn._kernel import Task

FloatArray = npt.NDArray[np.floating]
Parts = tuple[FloatArray, ...]
Body = Callable[[Task, FloatArray], None]  # a task's work, as for_each_task calls it
PARKED_BYTES = 64 << 20  # per thread: copies of parts waiting for their turn
_CONDITIONS = 16  # head blocks share this many locks (mod)


class OrderedAdds:
    """Apply each task's parts to shared rows in list order, whichever thread ends first.

    Args:
        tasks: the tasks in the order the kernel hands them out. A task with no key
            (``hi == lo``) takes no turn: it must not call :meth:`add`.
        apply: ``apply(task, parts)`` writes a task's parts into the shared rows; called
            under the head block's lock, one task at a time per head block, in list order.

    One thread holds at most :data:`PARKED_BYTES` of parked copies.
    """

    def __init__(self, tasks: list[Task], apply: Callable[[Task, Parts], None]) -> None:
        self._apply = apply
        self._parked_bytes = PARKED_BYTES
        self._place: dict[Task, int] = {}  # a task's turn among its head block's
        count: dict[tuple[int, int], int] = {}
        for t in tasks:
            if t.hi > t.lo:
                self._place[t] = count.get((t.n, t.h0), 0)
                count[t.n, t.h0] = self._place[t] + 1
        self._turn = dict.fromkeys(count, 0)  # per head block: the turn to apply next
        self._conditions = [threading.Condition() for _ in range(_CONDITIONS)]
        self._parked: dict[tuple[int, int], dict[int, tuple[Task, Parts]]] = {}
        self._worker = threading.local()  # .held: (head block, turn, bytes) parked here
        self._failed = threading.Event()

    def add(self, task: Task, parts: Parts) -> None:
        """Apply ``task``'s parts in its turn (now, later by another thread, or after a wait).

        ``parts`` may be the caller's scratch: a parked task's parts are copied.
        """
        head, mine = (task.n, task.h0), self._place[task]
        turn = self._turn
        condition = self._conditions[hash(head) % _CONDITIONS]
        with condition:
            held = [p for p in getattr(self._worker, "held", []) if turn[p[0]] <= p[1]]
            size = sum(part.nbytes for part in parts)
            if turn[head] != mine and sum(p[2] for p in held) + size <= self._parked_bytes:
                self._parked.setdefault(head, {})[mine] = (task, tuple(p.copy() for p in parts))
                self._worker.held = [*held, (head, mine, size)]
                return
            while turn[head] != mine:
                if self._failed.is_set():
                    return
                condition.wait()
            self._apply(task, parts)
            turn[head] += 1
            waiting = self._parked.get(head, {})
            while turn[head] in waiting:
                self._apply(*waiting.pop(turn[head]))
                turn[head] += 1
            condition.notify_all()

    def guarded(self, body: Body) -> Body:
        """``body`` for :func:`refattn._kernel.for_each_task`, waking every waiter if it raises.

        A task that raises never takes its turn; the threads waiting for it return
        instead (the call fails with the task's exception).
        """

        def run(task: Task, buffer: FloatArray) -> None:
            try:
                body(task, buffer)
            except BaseException:
                self._failed.set()
                for condition in self._conditions:
                    with condition:
                        condition.notify_all()
                raise

        return run

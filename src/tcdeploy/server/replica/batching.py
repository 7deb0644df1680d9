"""Adaptive batching: merge concurrent requests into one call of a batch function.

One scheduler task hands batches to a single worker thread, one batch at a time. While the worker
is busy, new requests queue up by batch key, so under load batches form on their own. When the
worker is free it takes the key whose oldest request has waited longest, and waits a little for
more only when the previous batch held several requests: at concurrency 1 nothing ever waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS

_logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# Upper bounds of the batch-size histogram kept in `BatchStats` (in rows).
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class DeadlinePassed(Exception):
    """The request waited in the queue past its deadline: its caller has given up, so it is
    never scored (work nobody waits for would only delay the requests behind it)."""


@dataclass(slots=True)
class _Pending:
    item: Any
    rows: int
    arrived: float
    future: asyncio.Future
    deadline: float | None = None  # monotonic


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0
    rows: int = 0
    max_batch_rows: int = 0
    max_batch_requests: int = 0
    queued: int = 0
    expired: int = 0  # dropped unscored: still queued at their deadline
    row_buckets: list[int] = field(default_factory=lambda: [0] * (len(ROW_BUCKETS) + 1))

    def record(self, requests: int, rows: int) -> None:
        self.batches += 1
        self.rows += rows
        self.max_batch_rows = max(self.max_batch_rows, rows)
        self.max_batch_requests = max(self.max_batch_requests, requests)
        bucket = next((i for i, bound in enumerate(ROW_BUCKETS) if rows <= bound), -1)
        self.row_buckets[bucket] += 1

    def as_dict(self) -> dict[str, Any]:
        cumulative, buckets = 0, []
        for bound, count in zip([*ROW_BUCKETS, "+Inf"], self.row_buckets):
            cumulative += count
            buckets.append([bound, cumulative])
        return {
            "requests": self.requests,
            "batches": self.batches,
            "rows": self.rows,
            "max_batch_rows": self.max_batch_rows,
            "max_batch_requests": self.max_batch_requests,
            "queued": self.queued,
            "expired": self.expired,
            "batch_rows_buckets": buckets,
        }


class Batcher(Generic[Item, Result]):
    """Calls `run_batch(items) -> results` (one result per item, in order) in a worker thread."""

    def __init__(
        self,
        run_batch: Callable[[list[Item]], list[Result]],
        *,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_wait_s: float = 0.002,
    ):
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self._run_batch = run_batch
        self._max_rows = max_batch_rows
        self._max_wait = max_wait_s
        # Idle this long after a batch, clients have gone quiet: expect requests one by one.
        self._idle_reset = max_wait_s * 10
        self._queues: dict[Hashable, deque[_Pending]] = {}
        self._arrival: asyncio.Event | None = None
        self._last_batch_end = 0.0
        self._expected = 1  # requests the previous batch held: how many to wait for
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.busy_since: float | None = None  # when the batch in the worker began (monotonic)
        self.stats = BatchStats()

    async def submit(self, item: Item, *, rows: int, key: Hashable | None, deadline: float | None = None) -> Result:
        """Queue `item` (holding `rows` rows) and wait for its result; None key: never merged.
        Raises DeadlinePassed if it is still queued at `deadline` (monotonic)."""
        if self._stopping:
            raise RuntimeError("the batcher is stopping")
        self._ensure_running()
        now = time.monotonic()
        future = asyncio.get_running_loop().create_future()
        pending = _Pending(item, rows, now, future, deadline)
        self._queues.setdefault(object() if key is None else key, deque()).append(pending)
        self.stats.requests += 1
        self.stats.queued += 1
        self._arrival.set()
        return await future

    async def stop(self, timeout_s: float | None = None) -> None:
        """Finish every queued request, then stop; after `timeout_s`, abandon what is left."""
        self._stopping = True
        if self._task is not None:
            self._arrival.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except asyncio.TimeoutError:
                _logger.warning("batches still running after %s s: abandoning them", timeout_s)
                self._task.cancel()
                self._executor.shutdown(wait=False, cancel_futures=True)
                return
        self._executor.shutdown(wait=True)

    def _ensure_running(self) -> None:
        if self._task is None:
            self._arrival = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._schedule())

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queues:
                if self._stopping:
                    return
                self._arrival.clear()
                await self._arrival.wait()
                continue
            key, queue = min(self._queues.items(), key=lambda entry: entry[1][0].arrived)
            await self._gather(queue)
            self._drop_expired(queue)
            if not queue:
                del self._queues[key]
                continue
            batch = self._take(queue)
            if not queue:
                del self._queues[key]
            await self._run(loop, batch)

    async def _gather(self, queue: deque[_Pending]) -> None:
        """Wait for as many requests as the previous batch held, at most `max_wait` in all.

        The previous batch's size is the best guess of how many clients are sending: at
        concurrency 1 it is 1 and nothing waits; under load the worker was busy and the
        requests that queued meanwhile usually fill the batch already.
        """
        if queue[0].arrived - self._last_batch_end > self._idle_reset:
            self._expected = 1
        if self._stopping:
            return
        deadline = queue[0].arrived + self._max_wait
        while len(queue) < self._expected and sum(p.rows for p in queue) < self._max_rows:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:  # the builtin TimeoutError only from 3.11
                return

    def _drop_expired(self, queue: deque[_Pending]) -> None:
        now = time.monotonic()
        for pending in [p for p in queue if p.deadline is not None and p.deadline <= now]:
            queue.remove(pending)
            self.stats.queued -= 1
            self.stats.expired += 1
            if not pending.future.done():
                pending.future.set_exception(DeadlinePassed())

    def _take(self, queue: deque[_Pending]) -> list[_Pending]:
        """The oldest requests whose rows fit in a batch; a request too big for one goes alone."""
        batch = [queue.popleft()]
        rows = batch[0].rows
        while queue and rows + queue[0].rows <= self._max_rows:
            rows += queue[0].rows
            batch.append(queue.popleft())
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        self.stats.queued -= len(batch)
        self.stats.record(len(batch), sum(p.rows for p in batch))
        self._expected = len(batch)
        self.busy_since = time.monotonic()
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, [p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
        except Exception as exc:  # a bug in run_batch: fail its own requests, keep serving
            _logger.exception("batch of %d requests failed", len(batch))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        finally:
            self._last_batch_end = time.monotonic()
            self.busy_since = None
        for pending, result in zip(batch, results):
            if not pending.future.done():
                pending.future.set_result(result)

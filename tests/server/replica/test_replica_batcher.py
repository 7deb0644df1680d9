"""The batcher's scheduling, with a plain function as the batch: what merges, what waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tcdeploy.server.replica.batching import Batcher


class Recorder:
    """A batch function that doubles its items and remembers every batch it was given."""

    def __init__(self, delay_s: float = 0.0, fail_on=None):
        self.batches: list[list] = []
        self.threads: set[str] = set()
        self._delay = delay_s
        self._fail_on = fail_on

    def __call__(self, items: list) -> list:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        time.sleep(self._delay)
        if self._fail_on is not None and self._fail_on in items:
            raise ValueError(f"cannot take {self._fail_on}")
        return [item * 2 for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_lone_request_does_not_wait():
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch_rows=32, max_wait_s=1.0)

    async def scenario():
        started = time.monotonic()
        results = [await batcher.submit(n, rows=1, key="k") for n in range(5)]
        elapsed = time.monotonic() - started
        await batcher.stop()
        return results, elapsed

    results, elapsed = run(scenario())
    assert results == [0, 2, 4, 6, 8]
    assert elapsed < 0.5  # five requests, none of them waited out the 1 s window
    assert recorder.batches == [[0], [1], [2], [3], [4]]
    assert recorder.threads and all(name.startswith("predict") for name in recorder.threads)


def test_requests_arriving_while_the_worker_is_busy_are_merged():
    recorder = Recorder(delay_s=0.05)
    batcher = Batcher(recorder, max_batch_rows=32, max_wait_s=0.0)

    async def scenario():
        results = await asyncio.gather(*(batcher.submit(n, rows=1, key="k") for n in range(20)))
        await batcher.stop()
        return results

    assert run(scenario()) == [n * 2 for n in range(20)]
    assert len(recorder.batches) <= 3
    assert max(map(len, recorder.batches)) >= 10
    assert sorted(item for batch in recorder.batches for item in batch) == list(range(20))
    assert batcher.stats.max_batch_requests == max(map(len, recorder.batches))
    assert batcher.stats.requests == 20 and batcher.stats.rows == 20


def test_batches_respect_the_row_limit_and_a_big_request_goes_alone():
    recorder = Recorder(delay_s=0.02)
    batcher = Batcher(recorder, max_batch_rows=8, max_wait_s=0.0)
    sizes = {n: 3 for n in range(10)} | {100: 20}

    async def scenario():
        await asyncio.gather(*(batcher.submit(n, rows=rows, key="k") for n, rows in sizes.items()))
        await batcher.stop()

    run(scenario())
    for batch in recorder.batches:
        assert batch == [100] or sum(sizes[n] for n in batch) <= 8
    assert [100] in recorder.batches
    assert batcher.stats.max_batch_rows == 20


def test_different_keys_are_never_merged_and_none_means_alone():
    recorder = Recorder(delay_s=0.02)
    batcher = Batcher(recorder, max_batch_rows=32, max_wait_s=0.0)
    keys = {n: ("a" if n % 3 == 0 else "b" if n % 3 == 1 else None) for n in range(18)}

    async def scenario():
        await asyncio.gather(*(batcher.submit(n, rows=1, key=key) for n, key in keys.items()))
        await batcher.stop()

    run(scenario())
    for batch in recorder.batches:
        assert len({keys[n] for n in batch}) == 1
        assert keys[batch[0]] is not None or len(batch) == 1
    assert any(len(batch) > 1 for batch in recorder.batches)


def test_a_failing_batch_fails_only_its_own_requests():
    recorder = Recorder(delay_s=0.02, fail_on=3)
    batcher = Batcher(recorder, max_batch_rows=32, max_wait_s=0.0)

    async def scenario():
        first = await asyncio.gather(*(batcher.submit(n, rows=1, key="k") for n in range(6)), return_exceptions=True)
        after = await batcher.submit(10, rows=1, key="k")
        await batcher.stop()
        return first, after

    first, after = run(scenario())
    failed_batch = next(batch for batch in recorder.batches if 3 in batch)
    for n, result in enumerate(first):
        if n in failed_batch:
            assert isinstance(result, ValueError) and "cannot take 3" in str(result)
        else:
            assert result == n * 2
    assert after == 20


def test_during_a_burst_the_next_batch_waits_for_the_stragglers():
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch_rows=32, max_wait_s=0.5)

    async def scenario():
        # A burst of concurrent requests tells the scheduler that several clients are active.
        await asyncio.gather(*(batcher.submit(n, rows=1, key="k") for n in range(6)))
        recorder.batches.clear()

        async def late(n: int):
            await asyncio.sleep(0.01 * n)  # arrivals 10 ms apart, well inside the window
            return await batcher.submit(n, rows=1, key="k")

        results = await asyncio.gather(*(late(n) for n in range(5)))
        await batcher.stop()
        return results

    assert run(scenario()) == [0, 2, 4, 6, 8]
    # Several requests per batch lately, so the scheduler waited for the rest instead of
    # sending the first one alone.
    assert recorder.batches == [[0, 1, 2, 3, 4]]


def test_stop_finishes_queued_requests():
    recorder = Recorder(delay_s=0.02)
    batcher = Batcher(recorder, max_batch_rows=2, max_wait_s=0.0)

    async def scenario():
        pending = [asyncio.ensure_future(batcher.submit(n, rows=1, key="k")) for n in range(7)]
        await asyncio.sleep(0)
        await batcher.stop()
        return [task.result() for task in pending]

    assert run(scenario()) == [n * 2 for n in range(7)]


@pytest.mark.parametrize("rows, wait", [(0, 0.0), (1, -1.0)])
def test_bad_settings_are_refused(rows, wait):
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_batch_rows=rows, max_wait_s=wait)

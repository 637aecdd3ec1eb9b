"""``harness.prefetch``: the next batch drawn in the background, in order, and an early close that never blocks."""

from __future__ import annotations

import contextlib
import gc
import threading
import time

from harness.prefetch import prefetched


def test_items_come_in_order_while_the_next_is_made_in_the_background():
    made: list[tuple[int, str]] = []

    def make(key: int) -> int:
        made.append((key, threading.current_thread().name))
        return key * key

    assert list(prefetched(make, [3, 1, 2])) == [9, 1, 4]
    assert [key for key, _ in made] == [3, 1, 2]
    assert all(name.startswith("harness-prefetch") for _, name in made)


def test_closing_early_does_not_wait_for_the_item_in_flight():
    release = threading.Event()

    def make(key: int) -> int:
        if key == 1:
            release.wait(10)  # the batch in flight when the consumer stops
        return key

    stream = prefetched(make, [0, 1, 2])
    assert next(stream) == 0
    start = time.perf_counter()
    stream.close()
    assert time.perf_counter() - start < 5.0  # blocking would wait for the 10 s of release.wait
    release.set()


def test_a_stream_left_open_by_an_exception_is_finalised_by_the_garbage_collector_without_blocking():
    # Its finaliser can run in any thread, a thread being started included (where a join deadlocked a
    # reproduction's next cell on Python 3.12): it must not wait for the worker.
    release = threading.Event()

    def make(key: int) -> int:
        if key == 1:
            release.wait(10)
        return key

    def train() -> None:
        stream = prefetched(make, [0, 1, 2])
        for _ in stream:
            raise ValueError("the model's step failed")

    start = time.perf_counter()
    with contextlib.suppress(ValueError):
        train()
    gc.collect()
    assert time.perf_counter() - start < 5.0  # blocking would wait for the 10 s of release.wait
    release.set()

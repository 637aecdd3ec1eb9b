"""Draw the next batch of episodes in a background thread while the model trains on this one."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def prefetched(make: Callable[[int], T], keys: Sequence[int]) -> Generator[T, None, None]:
    """``make(k)`` for each key in order, the next one made while the caller uses this one.

    Batches are indexed by their episodes' seeds, so the order and content do not depend
    on timing. Closing the iterator early does not wait for the batch in flight: an iterator
    left unclosed (its loop ended by an exception) is closed by the garbage collector, in
    whichever thread it runs, and a join there can deadlock a thread being started (seen on
    Python 3.12). Callers close it themselves (``contextlib.closing``).
    """
    if not keys:
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-prefetch")
    try:
        future = pool.submit(make, keys[0])
        for following in [*keys[1:], None]:
            item = future.result()
            if following is not None:
                future = pool.submit(make, following)
            yield item
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

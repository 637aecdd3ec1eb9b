"""Draw the next batch of episodes in a background thread while the model trains on this one."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def prefetched(make: Callable[[int], T], keys: Sequence[int]) -> Iterator[T]:
    """``make(k)`` for each key in order, the next one made while the caller uses this one.

    Batches are indexed by their episodes' seeds, so the order and content do not depend
    on timing. Closing the iterator early waits for the one batch in flight.
    """
    if not keys:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-prefetch") as pool:
        future = pool.submit(make, keys[0])
        for following in [*keys[1:], None]:
            item = future.result()
            if following is not None:
                future = pool.submit(make, following)
            yield item

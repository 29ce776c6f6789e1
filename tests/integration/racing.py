"""Start many requests at the same instant, each on its own thread and database connection."""
import threading
from collections.abc import Callable

from django.db import connection


def race(calls: list[Callable[[], int]], timeout_s: float = 60) -> list[int]:
    """Run every call at once (a barrier releases them together); return what each returned, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[int] = [0] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s)
    return results

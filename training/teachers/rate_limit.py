"""A token bucket shared by threads: at most `rate` HTTP requests per second, on average.

Hosted LLM APIs limit requests per minute; going over earns 429s and back-off, which is slower
than never going over. The bucket sits in front of every HTTP request the teacher's client sends,
the SDK's own retries included. Waiting is by reservation: a caller takes the next free slot and
sleeps until it comes, so threads are served in arrival order and nothing spins.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    def __init__(self, rate: float, burst: int = 1):
        if not rate > 0:
            raise ValueError(f"requests_per_second must be > 0, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is there; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1  # reserve: a negative balance is the queue of waiting callers
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)
        return wait

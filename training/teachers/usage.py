"""What a remote teacher cost: requests, retries, failures by reason, tokens, money, time.

A labelling run against a hosted LLM is paid per token and limited per request; this report is
how a user sees what a run spent, and why templates were left out. Counters are shared by the
teacher's worker threads, hence the lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class UsageReport:
    price_per_million_input: float = 0.0
    price_per_million_output: float = 0.0
    http_requests: int = 0          # every HTTP request sent, the SDK's retries and the mode probe included
    http_status: Counter = field(default_factory=Counter)   # responses by status code ("429": 3, ...)
    api_calls: int = 0              # completions asked for (each may have taken several HTTP requests)
    http_retries: int = 0           # HTTP requests the SDK retried (429, 5xx, timeouts, connection errors)
    answer_retries: int = 0         # questions asked again because the answer could not be read
    labelled: int = 0
    failures: Counter = field(default_factory=Counter)      # reason -> queries left out
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_seconds: float = 0.0       # time spent inside distributions()
    rate_limit_wait_seconds: float = 0.0  # summed over threads: time held back by requests_per_second
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def count(self, counter: str, key: str) -> None:
        with self._lock:
            getattr(self, counter)[key] += 1

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * self.price_per_million_input
                + self.completion_tokens * self.price_per_million_output) / 1e6

    def as_dict(self) -> dict:
        with self._lock:
            tokens = self.prompt_tokens + self.completion_tokens
            return {
                "http_requests": self.http_requests, "http_status": dict(self.http_status),
                "api_calls": self.api_calls, "http_retries": self.http_retries,
                "answer_retries": self.answer_retries, "labelled": self.labelled,
                "failed": sum(self.failures.values()), "failures": dict(self.failures),
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "tokens_per_label": round(tokens / self.labelled, 1) if self.labelled else None,
                "cost": round(self.cost, 6),
                "wall_seconds": round(self.wall_seconds, 3),
                "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
                "labels_per_second": round(self.labelled / self.wall_seconds, 3) if self.wall_seconds else None,
            }

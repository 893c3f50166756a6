"""What every consumer loop here shares (serve, its feedback loop, `logdistill teach`): the retry
back-off, and the offsets a processed batch commits. A module of its own so that those loops import
it rather than each other.
"""

from __future__ import annotations

import random

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata


class Backoff:
    """Exponential, with jitter so a fleet of consumers does not retry in lockstep."""

    def __init__(self, initial_s: float, max_s: float):
        self.initial_s, self.max_s = initial_s, max_s
        self.next_s = initial_s

    def next(self) -> float:
        delay = self.next_s
        self.next_s = min(self.next_s * 2, self.max_s)
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.next_s = self.initial_s


def next_offsets(records: list) -> dict:
    """{partition: last offset + 1}: the committed offset is the next one to read."""
    last: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        last[tp] = max(last.get(tp, -1), r.offset)
    return {tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()}


def first_offsets(records: list) -> dict:
    first: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        first[tp] = min(first.get(tp, r.offset), r.offset)
    return first

"""Collect logs: readers (files, JSONL, Loghub, recorded k8s labels), the seed corpus, pod logs,
Kafka snapshots, and augmentation (resampled variables, re-wrapped envelopes, LLM paraphrases)."""

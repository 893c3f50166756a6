"""Hot reload: a new model published in the model directory is served without a restart.

Publishing (the layout watched): --model names a directory, or a symlink to one, holding a
complete artifact. Replace it in one step, so a reader never sees half of it:
    - a new directory renamed over the old one (training/distill/export.py write_artifact does this), or
    - a symlink swapped to the new version:  ln -s v2 next && mv -T next current
Copying files into the live directory also works, but a half-copied state may be seen: that
attempt is rejected (its hashes do not match) and the finished copy is picked up at the next change.

Every --reload-interval-s the serve loop asks, between batches, whether the directory changed: a
fingerprint of a few stat calls (resolved path, and inode, size and mtime of each file). When it
did and SHA256SUMS differs from the served model's, the new model is loaded with the same loader
as at start-up, which verifies every hash first. A model that fails is rejected (logged, counted)
and the old one keeps serving; it is not retried until the directory changes again. The caller
swaps models only between batches, so every batch is classified, and labelled, by one model.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable

from service.artifact import CHECKSUM_FILE

log = logging.getLogger("logdistill.reload")


def fingerprint(model_dir: Path) -> tuple | None:
    """Cheap change detector for an artifact directory; None when there is no artifact there now
    (e.g. between the two steps of a replace): that is not a new model, just not one yet."""
    try:
        real = os.path.realpath(model_dir)
        with os.scandir(real) as entries:
            files = tuple(sorted((e.name, e.inode(), *_size_mtime(e)) for e in entries if e.is_file()))
        directory_inode = os.stat(real).st_ino
    except OSError:  # missing, not a directory, or a file vanished while we looked
        return None
    if not any(name == CHECKSUM_FILE for name, *_ in files):
        return None
    return real, directory_inode, files


def _size_mtime(entry: os.DirEntry) -> tuple[int, int]:
    st = entry.stat()
    return st.st_size, st.st_mtime_ns


def checksums(model_dir: Path) -> bytes | None:
    """The SHA256SUMS bytes: they name the model exactly (every file's hash, config.json included)."""
    try:
        return (Path(model_dir) / CHECKSUM_FILE).read_bytes()
    except OSError:
        return None


class ModelReloader:
    """Build it before the first model is loaded: what it sees then counts as what is served."""

    def __init__(self, model_dir: str | Path, load: Callable[[Path], object], interval_s: float,
                 metrics=None, clock: Callable[[], float] = time.monotonic):
        self.model_dir = Path(model_dir)
        self.load = load  # path -> Classifier; raises on a bad artifact
        self.interval_s = interval_s
        self.metrics = metrics
        self.clock = clock
        self._fingerprint = fingerprint(self.model_dir)
        self._served_sums = checksums(self.model_dir)
        self._next_check = clock() + interval_s

    def check(self):
        """A newly loaded, verified classifier if a new model was published since; else None.
        Looks at the directory at most once per interval (0: never)."""
        if self.interval_s <= 0 or self.clock() < self._next_check:
            return None
        self._next_check = self.clock() + self.interval_s
        return self.check_now()

    def check_now(self):
        current = fingerprint(self.model_dir)
        if current is None or current == self._fingerprint:
            return None
        self._fingerprint = current  # tried once per change, whatever the outcome
        sums = checksums(self.model_dir)
        if sums is None or sums == self._served_sums:
            return None  # touched or re-copied, same model
        try:
            classifier = self.load(self.model_dir)
        except Exception as exc:  # ArtifactError, or ONNX Runtime / tokenizers refusing a file
            self._count("rejected")
            log.error("new model in %s rejected, still serving the previous one: %s", self.model_dir, exc)
            return None
        # The sums read before loading: if the directory changed again meanwhile, the next
        # check sees a difference and loads once more; a newer model is never missed.
        self._served_sums = sums
        self._count("ok")
        log.info("model reloaded from %s: now serving %s", self.model_dir, classifier.model_version)
        return classifier

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.model_reloads.labels(result).inc()

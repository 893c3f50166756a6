"""Novel-template rate: lines whose template the student never saw in training, a drift signal.

The artifact's templates.json (written by training/distill/export.py) lists the ids of the template keys
the student was trained on. A rising share of lines outside that set means the log stream has
moved away from the training data: accuracy is then unknown rather than what metrics.json says,
and it is time to escalate, label and retrain. Counted per line (what the operator sees); an
artifact without the file gives no signal rather than a wrong one.
"""

from __future__ import annotations

from service.records import template_id

SEEN, NOVEL = "seen", "novel"


class NoveltyTracker:
    def __init__(self, training_templates: frozenset[str] | None, counter=None):
        self.training_templates = training_templates
        self.counter = counter  # prometheus Counter with one label (SEEN / NOVEL), or None

    @classmethod
    def for_classifier(cls, classifier, counter=None) -> "NoveltyTracker":
        return cls(classifier.student.artifact.training_templates, counter)

    @property
    def known(self) -> bool:
        """Whether this model says what it was trained on (artifacts before templates.json do not)."""
        return self.training_templates is not None

    def is_novel(self, template_key: str) -> bool | None:
        if self.training_templates is None:
            return None
        return template_id(template_key) not in self.training_templates

    def observe(self, template_key: str, lines: int = 1) -> bool | None:
        """Counts `lines` lines of this template (serve counts a batch's lines of a template at once)."""
        novel = self.is_novel(template_key)
        if novel is not None and self.counter is not None:
            self.counter.labels(NOVEL if novel else SEEN).inc(lines)
        return novel

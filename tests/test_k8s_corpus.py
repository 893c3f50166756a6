import random
from collections import Counter

import pytest

from service.parsing import parse_line
from service.taxonomy import load_taxonomy
from training.corpus.k8s_corpus import (ENVELOPES, PLACEHOLDER_RE, SeedTemplate, generate_lines, load_seed_templates,
                                 render, wrap)

KLOG_EXPECTED = {None: "info", "info": "info", "warning": "warning", "error": "error", "fatal": "fatal"}


@pytest.fixture(scope="module")
def corpus():
    return load_seed_templates()


def test_loads_with_ids_and_known_labels(corpus):
    templates, slots = corpus
    labels = set(load_taxonomy().labels)
    assert all(isinstance(t, SeedTemplate) for t in templates)
    assert [t.template_id for t in templates] == [f"k8s-{i:03d}" for i in range(1, len(templates) + 1)]
    assert {t.label for t in templates} == labels
    assert len({t.text for t in templates}) == len(templates)


def test_at_least_14_templates_per_label_and_30_normal(corpus):
    counts = Counter(t.label for t in corpus[0])
    for label in load_taxonomy().labels:
        assert counts[label] >= 14, (label, counts[label])
    assert counts["normal"] >= 30


def test_slots_resolvable_and_pools_large_enough(corpus):
    templates, slots = corpus
    used = {m.group(1) for t in templates for m in PLACEHOLDER_RE.finditer(t.text)}
    assert used <= slots.keys()
    assert not slots.keys() - used, "unused slots"
    assert all(len(values) >= 8 for values in slots.values())
    rng = random.Random(0)
    for t in templates:
        message = render(t, slots, rng)
        assert PLACEHOLDER_RE.search(message) is None, (t.template_id, message)


def test_repeated_placeholder_gets_same_value(corpus):
    _, slots = corpus
    t = SeedTemplate("x", "normal", None, "{ip} {ip} {ip:2}")
    for seed in range(20):
        a, b, _ = render(t, slots, random.Random(seed)).split()
        assert a == b


def test_bad_yaml_raises(tmp_path):
    bad_slot = tmp_path / "bad_slot.yaml"
    bad_slot.write_text("slots: {ip: ['1.2.3.4']}\ntemplates:\n  - {label: network, level: error, text: 'dial {host}'}\n")
    with pytest.raises(ValueError, match="undefined slot"):
        load_seed_templates(bad_slot)
    bad_label = tmp_path / "bad_label.yaml"
    bad_label.write_text("slots: {ip: ['1.2.3.4']}\ntemplates:\n  - {label: networking, level: error, text: 'dial {ip}'}\n")
    with pytest.raises(ValueError, match="not in the taxonomy"):
        load_seed_templates(bad_label)


def test_generation_is_deterministic_per_seed(corpus):
    templates, slots = corpus
    a = generate_lines(templates, slots, per_template=3, seed=42)
    assert a == generate_lines(templates, slots, per_template=3, seed=42)
    assert a != generate_lines(templates, slots, per_template=3, seed=43)
    assert len(a) == 3 * len(templates)
    ids = {t.template_id: t.label for t in templates}
    assert all(ids[tid] == label for _, tid, label in a)
    assert Counter(tid for _, tid, _ in a) == Counter({t.template_id: 3 for t in templates})


def test_every_envelope_parses_back_to_the_message(corpus):
    templates, slots = corpus
    rng = random.Random(7)
    for t in templates:
        for _ in range(3):
            message = render(t, slots, rng)
            # Some seed texts are themselves an envelope ("LOG:  ...", "[INFO] ..."): plain gives that
            # envelope, CRI and docker unwrap it once more, klog and JSON carry it as their message.
            inner = parse_line(message)
            for envelope in ENVELOPES:
                line = wrap(message, t.level, rng, envelope=envelope)
                parsed = parse_line(line)
                if envelope == "plain" or (envelope in ("cri", "docker") and inner.format != "plain"):
                    expected = "+".join(f for f in (envelope, inner.format) if f != "plain") or "plain"
                    assert (parsed.message, parsed.format) == (inner.message, expected), (t.template_id, line)
                    continue
                assert parsed.message.strip() == message.strip(), (t.template_id, envelope, line)
                assert parsed.format == envelope, (t.template_id, envelope, line)
                if envelope == "klog":
                    assert parsed.level == KLOG_EXPECTED[t.level], (t.template_id, line)
                elif envelope == "json":
                    assert parsed.level == t.level, (t.template_id, line)
                elif envelope in ("cri", "docker"):
                    stream = "stderr" if t.level in ("warning", "error", "fatal") else "stdout"
                    assert parsed.fields["stream"] == stream


def test_random_envelopes_all_used_and_parse(corpus):
    templates, slots = corpus
    lines = generate_lines(templates, slots, per_template=5, seed=1)
    formats = Counter(parse_line(raw).format.split("+")[0] for raw, _, _ in lines)
    assert set(ENVELOPES) <= set(formats)  # plain lines may name the seed text's own envelope

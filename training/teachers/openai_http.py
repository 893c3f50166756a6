"""The large-LLM teacher behind an OpenAI-compatible HTTP API: vLLM, Ollama, llama.cpp server, or a hosted model.

Every such server speaks /v1/chat/completions (and most /v1/completions), so one client covers
them: the official `openai` SDK pointed at `base_url`. The teacher asks the shared LabelPrompt and
turns the answer into a distribution over the taxonomy:

- "logprobs" mode: the server returns the top-k token log-probabilities, and the label's first
  token gives a soft label from one greedy answer (rules in logprob_labels.py).
- "json" mode (no logprobs: many hosted models, reasoning models): the JSON answer is parsed
  with `parse_answer` and the label gets 1 (PROB_FLOOR elsewhere, renormalised).
  `logprobs="auto"` sends one probe request on first use to see which mode the server supports.

Answers that cannot be read (malformed JSON, an unknown label, no label among the top tokens)
are asked again up to `max_answer_retries` times at temperature 1 with a new seed: a greedy
(temperature 0) question asked again would mostly get the same bad answer, and temperature 1 is
the distribution the teacher reports anyway. Still unreadable: the query gets None and the reason
is counted, never a guess.

Transport failures are the SDK's business: it retries 408/409/429/5xx, timeouts and connection
errors `max_retries` times with exponential back-off and jitter (0.5 s doubling to 8 s), and
honours Retry-After / retry-after-ms up to two minutes (a longer Retry-After is not retried).
That is what we need, so there is no second retry loop here. When the retries run out the query
fails with a reason ("rate_limited", "server_error", "timeout", "connection", ...); a rejected
key, a missing model or endpoint stop the run with a TeacherError instead, since every other
query would fail the same way. `timeout_s` is per HTTP request and includes the time a request
waits in the server's queue: a server that runs one request at a time (llama.cpp with one slot,
training/teachers/server.py) needs timeout_s > concurrency x the time of one answer.

Requests run on `concurrency` threads; an optional token bucket (`requests_per_second`) sits in
front of every HTTP request, retries included. `report()` says what a run cost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import openai

from service.taxonomy import Taxonomy
from training.teachers.base import TeacherQuery
from training.teachers.logprob_labels import TokenStep, label_mass, label_start, one_hot, to_distribution
from training.teachers.prompt import ANSWER_PREFIX, LabelPrompt
from training.teachers.rate_limit import TokenBucket
from training.teachers.usage import UsageReport

log = logging.getLogger("logdistill.teacher.openai")

ENDPOINTS = ("chat", "completions")
LOGPROB_MODES = ("auto", "on", "off")
RETRY_TEMPERATURE = 1.0
PROBE_LINE = "I1130 10:02:11.120 1 server.go:88] Started HTTP server on :8080"

# The SDK's errors once its own retries are spent: the query is left out, with this reason.
# (401, 403 and 404 never get here: _call turns them into a TeacherError that stops the run.)
QUERY_ERRORS = (
    (openai.RateLimitError, "rate_limited"),
    (openai.InternalServerError, "server_error"),
    (openai.APITimeoutError, "timeout"),
    (openai.APIConnectionError, "connection"),  # after APITimeoutError: a timeout is a connection error too
    (openai.BadRequestError, "bad_request"),     # e.g. one line over the context length
    (openai.APIResponseValidationError, "invalid_response"),
    (openai.APIStatusError, "http_error"),       # any other status the SDK gave up on
)


class TeacherError(RuntimeError):
    """The teacher cannot work at all (wrong key, unknown model or endpoint): stop, do not label anything."""


@dataclass(frozen=True)
class Answer:
    text: str                      # the whole answer, ANSWER_PREFIX included (what parse_answer reads)
    generated: str                 # what the model generated
    steps: list[TokenStep] | None  # per generated token: its top alternatives (None: no logprobs returned)
    label_at: int | None           # where in `generated` the label name starts (None: nowhere)


class OpenAITeacher:
    def __init__(self, taxonomy: Taxonomy, base_url: str, model: str, api_key: str | None = None,
                 endpoint: str = "chat", prompt: LabelPrompt | None = None, concurrency: int = 4,
                 requests_per_second: float | None = None, max_retries: int = 4, timeout_s: float = 60,
                 logprobs: str = "auto", top_logprobs: int = 20, max_tokens: int = 16,
                 price_per_million_input: float = 0.0, price_per_million_output: float = 0.0,
                 max_answer_retries: int = 2):
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
        if logprobs not in LOGPROB_MODES:
            raise ValueError(f"logprobs must be one of {LOGPROB_MODES}, got {logprobs!r}")
        if concurrency < 1 or max_tokens < 1 or top_logprobs < 1 or max_answer_retries < 0:
            raise ValueError("concurrency, max_tokens and top_logprobs must be >= 1, max_answer_retries >= 0")
        self.taxonomy = taxonomy
        self.prompt = prompt or LabelPrompt(taxonomy)
        if self.prompt.taxonomy.labels != taxonomy.labels:
            raise ValueError("the prompt was built for another taxonomy")
        self.model = self.model_id = model  # model_id: the ChatModel protocol's name for it
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.top_logprobs = top_logprobs
        self.max_tokens = max_tokens
        self.max_answer_retries = max_answer_retries
        self.usage = UsageReport(price_per_million_input, price_per_million_output)
        self._bucket = TokenBucket(requests_per_second) if requests_per_second else None
        self._mode = {"on": "logprobs", "off": "json", "auto": None}[logprobs]
        http_client = openai.DefaultHttpxClient(event_hooks={"request": [self._before_request],
                                                             "response": [self._after_response]})
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "no-key",
            max_retries=max_retries, timeout=timeout_s, http_client=http_client)

    # ---- identity ---------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """"logprobs" or "json"; with logprobs="auto" the first use asks the server once."""
        if self._mode is None:
            self._mode = self._probe_mode()
            log.info("%s: the server %s logprobs: %s mode", self.model,
                     "returns" if self._mode == "logprobs" else "does not return", self._mode)
        return self._mode

    @property
    def teacher_id(self) -> str:
        # What decides the answers (model, prompt, endpoint, mode), not where the server is or the key.
        return f"openai:{self.model}:{self.prompt.prompt_id}:{self.endpoint}:{self.mode}"

    def _probe_mode(self) -> str:
        try:
            answer = self._ask(PROBE_LINE, temperature=0.0, seed=None, want_logprobs=True)
        except openai.BadRequestError:  # some servers refuse the logprobs parameters outright
            return "json"
        return "logprobs" if answer.steps else "json"

    # ---- the Teacher protocol -----------------------------------------------------------------

    def distributions(self, queries: list[TeacherQuery]) -> list[np.ndarray | None]:
        """One distribution per query (taxonomy order, T=1), None where the answer could not be read."""
        if not queries:
            return []
        mode = self.mode  # resolve before the threads start
        started = time.monotonic()
        stop = threading.Event()

        def label(query: TeacherQuery) -> np.ndarray | None:
            if stop.is_set():  # a fatal error is on its way up: send nothing more
                return None
            try:
                return self._label(query.example, mode)
            except TeacherError:
                stop.set()
                raise

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-teacher")
        try:
            return list(pool.map(label, queries))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            self.usage.add(wall_seconds=time.monotonic() - started)
            log.info("teacher %s: %s", self.model, self.report())

    def report(self) -> dict:
        """Requests, retries, failures by reason, tokens, cost and speed so far."""
        mode = self._mode or "not-probed-yet"
        return {"teacher_id": f"openai:{self.model}:{self.prompt.prompt_id}:{self.endpoint}:{mode}",
                **self.usage.as_dict()}

    # ---- a ChatModel too (paraphrase augmentation) --------------------------------------------

    def chat(self, messages: list[dict], max_tokens: int = 64, temperature: float = 0.0,
             seed: int | None = None) -> str:
        """The assistant's reply to `messages` (always /v1/chat/completions)."""
        request = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            request["seed"] = seed
        response = self._call(self.client.chat.completions, request)
        return (response.choices[0].message.content or "") if response.choices else ""

    # ---- one query ----------------------------------------------------------------------------

    def _label(self, line: str, mode: str) -> np.ndarray | None:
        problem = None
        for attempt in range(1 + self.max_answer_retries):
            if attempt:
                self.usage.add(answer_retries=1)
            try:
                answer = self._ask(line, temperature=RETRY_TEMPERATURE if attempt else 0.0,
                                   seed=attempt or None, want_logprobs=mode == "logprobs")
            except tuple(error for error, _ in QUERY_ERRORS) as exc:
                return self._fail(next(reason for error, reason in QUERY_ERRORS if isinstance(exc, error)), exc)
            distribution, problem = self._read(answer, mode)
            if distribution is not None:
                self.usage.add(labelled=1)
                return distribution
        return self._fail(problem)

    def _fail(self, reason: str, exc: Exception | None = None) -> None:
        self.usage.count("failures", reason)
        log.debug("teacher could not label a line: %s%s", reason, f" ({exc})" if exc else "")
        return None

    def _read(self, answer: Answer, mode: str) -> tuple[np.ndarray | None, str | None]:
        """The distribution an answer gives, or (None, why not)."""
        labels = self.taxonomy.labels
        if not answer.generated.strip():
            return None, "empty_answer"
        if mode == "json":
            label = self.prompt.parse_answer(answer.text)
            return (one_hot(label, labels), None) if label else (None, "malformed_answer")
        if answer.steps is None:
            return None, "no_logprobs"
        if answer.label_at is None:
            return None, "malformed_answer"
        distribution = to_distribution(label_mass(answer.steps, answer.label_at, labels), labels)
        return (distribution, None) if distribution is not None else (None, "no_label_in_top_logprobs")

    def _ask(self, line: str, temperature: float, seed: int | None, want_logprobs: bool) -> Answer:
        request = {"model": self.model, "max_tokens": self.max_tokens, "temperature": temperature}
        if seed is not None:
            request["seed"] = seed
        if self.endpoint == "chat":
            request["messages"] = self.prompt.messages(line)
            if want_logprobs:
                request.update(logprobs=True, top_logprobs=self.top_logprobs)
            return chat_answer(self._call(self.client.chat.completions, request), self.taxonomy.labels)
        request.update(prompt=self.prompt.completion_text(line), stop=["\n"])
        if want_logprobs:
            request["logprobs"] = self.top_logprobs
        return completion_answer(self._call(self.client.completions, request))

    def _call(self, resource, request: dict):
        """One API call through the SDK (its retries included), counted; fatal errors become TeacherError."""
        try:
            raw = resource.with_raw_response.create(**request)
        except openai.AuthenticationError as exc:
            raise TeacherError(f"{self.client.base_url} rejected the API key (HTTP 401): pass api_key= or set "
                               f"OPENAI_API_KEY. Server said: {exc.message}") from None
        except openai.PermissionDeniedError as exc:
            raise TeacherError(f"{self.client.base_url} refused access to model {self.model!r} (HTTP 403): "
                               f"{exc.message}") from None
        except openai.NotFoundError as exc:
            raise TeacherError(f"{self.client.base_url}: model {self.model!r} or the {self.endpoint} endpoint "
                               f"was not found (HTTP 404): {exc.message}") from None
        response = raw.parse()
        usage = getattr(response, "usage", None)
        self.usage.add(api_calls=1, http_retries=raw.retries_taken,
                       prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                       completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
        return response

    # ---- every HTTP request, retries included ---------------------------------------------------

    def _before_request(self, request) -> None:
        waited = self._bucket.acquire() if self._bucket is not None else 0.0
        self.usage.add(http_requests=1, rate_limit_wait_seconds=waited)

    def _after_response(self, response) -> None:
        self.usage.count("http_status", str(response.status_code))


def chat_answer(response, labels: tuple[str, ...]) -> Answer:
    """An Answer from a /v1/chat/completions response (logprobs under choices[0].logprobs.content)."""
    if not response.choices:
        return Answer("", "", None, None)
    choice = response.choices[0]
    generated = choice.message.content or ""
    content = choice.logprobs.content if choice.logprobs is not None else None
    if not content:
        return Answer(text=generated, generated=generated, steps=None, label_at=label_start(generated, labels))
    steps = [TokenStep(token.token, {**{alt.token: alt.logprob for alt in token.top_logprobs},
                                     token.token: token.logprob}) for token in content]
    # Offsets are counted in the tokens' own text: a token holding part of a UTF-8 character decodes
    # differently alone than inside the whole answer, so the two texts can differ in length.
    tokens_text = "".join(step.token for step in steps)
    return Answer(text=generated, generated=generated, steps=steps, label_at=label_start(tokens_text, labels))


def completion_answer(response) -> Answer:
    """An Answer from a /v1/completions response: the prompt ends with ANSWER_PREFIX, so the label starts at 0."""
    if not response.choices:
        return Answer(ANSWER_PREFIX, "", None, None)
    choice = response.choices[0]
    logprobs = choice.logprobs
    steps = None
    if logprobs is not None and logprobs.tokens and logprobs.top_logprobs:
        steps = [TokenStep(token, {**(alternatives or {}), token: token_logprob})
                 for token, alternatives, token_logprob in zip(logprobs.tokens, logprobs.top_logprobs,
                                                               logprobs.token_logprobs or [])]
    return Answer(text=ANSWER_PREFIX + choice.text, generated=choice.text, steps=steps, label_at=0)

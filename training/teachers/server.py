"""An OpenAI-compatible HTTP server in front of a local causal LM, so the HTTP teacher can be run
and tested against a real endpoint that speaks OpenAI's schema, offline.

Usage: `with running_server(load_local_lm(), api_key="k", max_concurrent=2) as base_url:` yields
`http://127.0.0.1:PORT/v1`; point any OpenAI client at it (`OpenAI(base_url=base_url, api_key="k")`).
Endpoints: GET /v1/models, POST /v1/chat/completions (messages, max_tokens or max_completion_tokens,
temperature (default 1, as OpenAI), seed, stop, logprobs + top_logprobs ≤ 20, n = 1) and POST
/v1/completions (prompt, max_tokens (default 16), temperature, seed, stop, logprobs ≤ 20, the legacy
logprobs shape). The model runs one request at a time (its lock); requests beyond `max_concurrent`
in flight get 429 with Retry-After, a wrong or missing bearer key 401, malformed input 400, always
with OpenAI's error body {"error": {"message", "type", "param", "code"}}. To provoke a 429 without
timing, hold `server.lm.lock` of an `LLMServer`, wait until `server.in_flight == max_concurrent`,
then send one more request. `logdistill teacher-server` runs it from the command line.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from training.teachers.local_lm import Generation, LocalCausalLM, TokenChoice

MAX_BODY_BYTES = 1 << 20
MAX_TOP_LOGPROBS = 20
RETRY_AFTER_SECONDS = 1


class RequestError(Exception):
    """A client error, answered with `status` and OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.error_type = status, param, code, error_type

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.error_type, "param": self.param, "code": self.code}}


# ---- request validation ---------------------------------------------------------------------

@dataclass
class GenerationRequest:
    prompt: str
    max_tokens: int
    temperature: float
    seed: int | None
    stop: tuple[str, ...]
    top_logprobs: int        # alternatives per token
    want_logprobs: bool


def _int(body: dict, name: str, default, low: int, high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(400, f"'{name}' must be an integer in [{low}, {high}], got {value!r}", name)
    return value


def _temperature(body: dict) -> float:
    value = body.get("temperature", 1.0)
    value = 1.0 if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
        raise RequestError(400, f"'temperature' must be a number in [0, 2], got {value!r}", "temperature")
    return float(value)


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise RequestError(400, "'stop' must be a non-empty string or a list of at most 4", "stop")
    return tuple(stop)


def _common_checks(body: dict) -> None:
    if body.get("n", 1) != 1:
        raise RequestError(400, "only n=1 is supported", "n")
    if body.get("stream"):
        raise RequestError(400, "streaming is not supported", "stream")


def message_text(message, index: int) -> tuple[str, str]:
    if not isinstance(message, dict):
        raise RequestError(400, f"messages[{index}] must be an object", "messages")
    role, content = message.get("role"), message.get("content")
    if role not in ("system", "developer", "user", "assistant"):
        raise RequestError(400, f"messages[{index}].role must be system, user or assistant", "messages")
    if isinstance(content, list):  # content parts: only text is understood
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                   for p in content):
            raise RequestError(400, f"messages[{index}].content: only text parts are supported", "messages")
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise RequestError(400, f"messages[{index}].content must be a string", "messages")
    return ("system" if role == "developer" else role), content


def chat_request(body: dict, lm: LocalCausalLM, max_tokens_limit: int) -> GenerationRequest:
    _common_checks(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list", "messages")
    turns = [dict(zip(("role", "content"), message_text(m, i))) for i, m in enumerate(messages)]
    want_logprobs = body.get("logprobs") or False
    if not isinstance(want_logprobs, bool):
        raise RequestError(400, "'logprobs' must be a boolean", "logprobs")
    top = _int(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS) or 0
    if top and not want_logprobs:
        raise RequestError(400, "'top_logprobs' requires 'logprobs': true", "top_logprobs")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = _int({"max_tokens": max_tokens}, "max_tokens", None, 1, max_tokens_limit) or max_tokens_limit
    return GenerationRequest(lm.chat_prompt(turns), max_tokens, _temperature(body), _int(body, "seed", None, -2**63,
                             2**63 - 1), _stop(body), top, want_logprobs)


def completion_request(body: dict, max_tokens_limit: int) -> GenerationRequest:
    _common_checks(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(400, "'prompt' must be a non-empty string (one prompt per request)", "prompt")
    if body.get("echo"):
        raise RequestError(400, "echo is not supported", "echo")
    logprobs = _int(body, "logprobs", None, 0, MAX_TOP_LOGPROBS)
    return GenerationRequest(prompt, _int(body, "max_tokens", 16, 1, max_tokens_limit), _temperature(body),
                             _int(body, "seed", None, -2**63, 2**63 - 1), _stop(body), logprobs or 0,
                             logprobs is not None)


# ---- responses ------------------------------------------------------------------------------

def _usage(result: Generation) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": len(result.tokens),
            "total_tokens": result.prompt_tokens + len(result.tokens),
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens}}


def _token_entry(choice: TokenChoice) -> dict:
    return {"token": choice.token, "logprob": choice.logprob, "bytes": choice.bytes}


def chat_response(result: Generation, request: GenerationRequest, model_id: str) -> dict:
    logprobs = None
    if request.want_logprobs:
        logprobs = {"content": [{**_token_entry(c), "top_logprobs": [_token_entry(t) for t in c.top]}
                                for c in result.tokens], "refusal": None}
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model_id, "system_fingerprint": f"fp_{model_id}",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text, "refusal": None},
                         "logprobs": logprobs, "finish_reason": result.finish_reason}],
            "usage": _usage(result)}


def completion_response(result: Generation, request: GenerationRequest, model_id: str) -> dict:
    logprobs = None
    if request.want_logprobs:
        # text_offset counts from the start of the prompt, as OpenAI's legacy endpoint does
        offsets, position = [], len(request.prompt)
        for c in result.tokens:
            offsets.append(position)
            position += len(c.token)
        logprobs = {"tokens": [c.token for c in result.tokens],
                    "token_logprobs": [c.logprob for c in result.tokens],
                    "top_logprobs": [{t.token: t.logprob for t in c.top} for c in result.tokens],
                    "text_offset": offsets}
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model_id, "system_fingerprint": f"fp_{model_id}",
            "choices": [{"index": 0, "text": result.text, "logprobs": logprobs,
                         "finish_reason": result.finish_reason}],
            "usage": _usage(result)}


# ---- the server -----------------------------------------------------------------------------

class LLMServer:
    """The HTTP server and its counters; `start()` serves on a background thread, `close()` stops it."""

    def __init__(self, lm: LocalCausalLM, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 max_concurrent: int = 4, max_tokens_limit: int = 512):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.lm = lm
        self.api_key = api_key
        self.max_concurrent = max_concurrent
        self.max_tokens_limit = max_tokens_limit
        self.in_flight = 0
        self.rejected = 0  # answered 429
        self._count_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "LLMServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="llm-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join()

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def admit(self) -> bool:
        with self._count_lock:
            if self.in_flight >= self.max_concurrent:
                self.rejected += 1
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._count_lock:
            self.in_flight -= 1

    def handle(self, method: str, path: str, body: dict | None) -> dict:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            return {"object": "list", "data": [{"id": self.lm.model_id, "object": "model", "created": 0,
                                                "owned_by": "logdistill"}]}
        if method == "POST" and path == "/v1/chat/completions":
            request = chat_request(body, self.lm, self.max_tokens_limit)
            return chat_response(self._generate(request), request, self.lm.model_id)
        if method == "POST" and path == "/v1/completions":
            request = completion_request(body, self.max_tokens_limit)
            return completion_response(self._generate(request), request, self.lm.model_id)
        raise RequestError(404, f"no route {method} {path}", code="not_found")

    def _generate(self, request: GenerationRequest) -> Generation:
        return self.lm.generate(request.prompt, request.max_tokens, request.temperature, request.seed,
                                top_logprobs=request.top_logprobs, stop=request.stop)


def parse_body(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(400, f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as OpenAI's SDK expects; every reply has a Content-Length
    server_version = "logdistill-llm"

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def log_message(self, *args):  # quiet: tests and the CLI report on their own
        pass

    def _serve(self, method: str) -> None:
        app: LLMServer = self.server.app
        try:
            raw = self._read_raw() if method == "POST" else None
            self._check_key(app)
            body = parse_body(raw) if method == "POST" else None
            if not app.admit():
                raise RequestError(429, f"more than {app.max_concurrent} requests in flight; retry later",
                                   code="rate_limit_exceeded", error_type="rate_limit_error")
            try:
                payload = app.handle(method, self.path, body)
            finally:
                app.release()
            self._reply(200, payload)
        except RequestError as error:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.status == 429 else {}
            self._reply(error.status, error.body(), headers)
        except Exception as error:  # a bug or the model failing: the client still gets an answer
            self._reply(500, RequestError(500, f"{type(error).__name__}: {error}", error_type="server_error").body())

    def _read_raw(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise RequestError(411, "a Content-Length header is required")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is left unread
            raise RequestError(413, f"request body over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(int(length))

    def _check_key(self, app: LLMServer) -> None:
        if app.api_key is None:
            return
        if self.headers.get("Authorization", "") != f"Bearer {app.api_key}":
            raise RequestError(401, "invalid or missing API key", code="invalid_api_key",
                               error_type="authentication_error")

    def _reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def running_server(lm: LocalCausalLM, host: str = "127.0.0.1", port: int = 0, **opts):
    """Serve `lm` on a background thread for the duration of the block; yields the base URL (…/v1).
    opts: api_key, max_concurrent, max_tokens_limit."""
    with LLMServer(lm, host, port, **opts) as server:
        yield server.base_url

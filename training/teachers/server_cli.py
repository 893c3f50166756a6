"""`logdistill teacher-server`: the local LLM behind an OpenAI-compatible HTTP API (see llm_server.py).

Registered into the `logdistill` command through an entry point, like `train`.
"""

from __future__ import annotations

import os
import signal
import threading


def register(commands) -> None:
    p = commands.add_parser("teacher-server", help="serve a local causal LM over an OpenAI-compatible HTTP API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("LOGDISTILL_TEACHER_API_KEY"),
                   help="bearer key clients must send (default: $LOGDISTILL_TEACHER_API_KEY; none: open)")
    p.add_argument("--max-concurrent", type=int, default=4, help="requests in flight beyond this get HTTP 429")
    p.add_argument("--max-tokens", type=int, default=512, help="largest max_tokens a request may ask for")
    p.add_argument("--model", help="GGUF file or Hugging Face model directory (default: SmolLM2-135M-Instruct Q4_1)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    # default None, resolved when the server starts: registering a command must not import the LM module
    p.add_argument("--prompt-cache", type=int,
                   help="keep the KV cache of this many recent prompts and compute only what a new prompt does "
                        "not share with one of them (0: off; default: local_lm.PROMPT_CACHE_ENTRIES, 4)")
    p.set_defaults(handler=run_teacher_server)


def run_teacher_server(args) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from training.teachers.server import LLMServer
    from training.teachers.local_lm import PROMPT_CACHE_ENTRIES, LocalCausalLM

    prompt_cache = PROMPT_CACHE_ENTRIES if args.prompt_cache is None else args.prompt_cache
    lm = LocalCausalLM(args.model, threads=args.threads, prompt_cache=prompt_cache)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LLMServer(lm, args.host, args.port, api_key=args.api_key, max_concurrent=args.max_concurrent,
                   max_tokens_limit=args.max_tokens) as server:
        print(f"serving {lm.model_id} on {server.base_url}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0

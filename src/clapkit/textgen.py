"""Text generation backends behind one interface: ``generate(prompts: list[str]) -> list[str]`` (one output per
prompt, same order; the raw text, stripped: callers wanting one line use :func:`clean_generation`).

- :class:`ChatEndpoint`: any OpenAI-compatible ``/v1/chat/completions`` server you run (vLLM, llama.cpp server,
  Ollama, LM Studio, ...), spoken to with the standard library (no ``openai`` dependency). There is no default URL:
  clapkit never talks to a public service unless you give its address.
- :class:`Seq2SeqModel`: a local transformers seq2seq directory (T5, BART, ...), loaded with ``local_files_only``.
- :class:`CachedGenerator`: wraps either and keeps every output in a JSONL file, so each prompt is generated once
  (re-runs and interrupted runs pick up where they stopped).

Used for keyword-to-caption and caption rewrites in training (``clapkit.train.captions``) and prompt augmentation in
evaluation.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from clapkit.errors import ClapkitError

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You write short, plain English captions of sounds. Reply with the caption only."
_QUOTES = "\"'`\u201c\u201d\u2018\u2019 "
_LABEL = r"^\s*(?:rewritten |new |the )?(?:caption|rewrite|description|sentence|answer|output)\s*\d*\s*:\s*"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class TextGenerationError(ClapkitError):
    """A text backend cannot be reached, loaded or understood."""


@runtime_checkable
class TextGenerator(Protocol):
    def generate(self, prompts: list[str]) -> list[str]: ...


def clean_generation(text: str) -> str:
    """First non-empty line, without quotes, list markers or a "Caption:" label, whitespace collapsed."""
    for line in str(text).splitlines():
        line = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s+", "", line).strip(_QUOTES)
        line = re.sub(_LABEL, "", line, flags=re.I)
        line = " ".join(line.split()).strip(_QUOTES)
        if line:
            return line
    return ""


def chat_completions_url(base_url: str) -> str:
    """``http://host:8000`` or ``.../v1`` or a full ``.../chat/completions`` URL -> the chat completions URL."""
    url = (base_url or "").strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise TextGenerationError(
            f"chat endpoint URL {base_url!r} is not an http(s) URL; give your server's address, "
            "e.g. http://127.0.0.1:8000/v1 (vLLM), http://127.0.0.1:8080/v1 (llama.cpp), http://127.0.0.1:11434/v1 "
            "(Ollama)"
        )
    if url.endswith("/chat/completions"):
        return url
    if not re.search(r"/v\d+$", url):
        url += "/v1"
    return url + "/chat/completions"


class ChatEndpoint:
    """An OpenAI-compatible chat completions server at ``base_url`` serving ``model``.

    ``api_key`` is sent as a bearer token when given (local servers usually need none). Each prompt is one user
    message after ``system_prompt``; ``concurrency`` requests run at once (servers like vLLM batch them). Transient
    failures (connection refused, timeouts, 429/5xx) are retried ``retries`` times with exponential backoff starting at
    ``backoff`` seconds; then :class:`TextGenerationError` says what failed and where.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        temperature: float = 0.7,
        max_tokens: int = 96,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.5,
        concurrency: int = 1,
        seed: int | None = None,
        extra_body: dict[str, Any] | None = None,
    ):
        if not model:
            raise TextGenerationError("give the model name the chat server serves (e.g. the --model of vLLM)")
        self.url = chat_completions_url(base_url)
        self.model = model
        self.api_key = api_key
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.concurrency = max(1, int(concurrency))
        self.seed = seed
        self.extra_body = dict(extra_body or {})

    @property
    def cache_namespace(self) -> str:
        return f"chat|{self.url}|{self.model}|{self.system_prompt}|{self.temperature}|{self.max_tokens}|{self.seed}"

    def generate(self, prompts: list[str]) -> list[str]:
        prompts = list(prompts)
        if self.concurrency == 1 or len(prompts) <= 1:
            return [self._complete(p) for p in prompts]
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete, prompts))

    def _payload(self, prompt: str) -> bytes:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                "max_tokens": self.max_tokens, "stream": False}
        if self.seed is not None:
            body["seed"] = self.seed
        body.update(self.extra_body)
        return json.dumps(body).encode("utf-8")

    def _complete(self, prompt: str) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = self._payload(prompt)
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                return self._parse(raw)
            except urllib.error.HTTPError as exc:
                detail = exc.read(500).decode("utf-8", errors="replace").strip()
                if exc.code in _RETRY_STATUS and attempt < self.retries:
                    self._wait(attempt, f"HTTP {exc.code}")
                    continue
                raise TextGenerationError(
                    f"chat endpoint {self.url} answered HTTP {exc.code} {exc.reason}: {detail or '(no body)'}; "
                    f"check the model name ({self.model!r}) and the server's log"
                ) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt < self.retries:
                    self._wait(attempt, str(reason))
                    continue
                raise TextGenerationError(
                    f"cannot reach the chat endpoint at {self.url} ({reason}) after {self.retries + 1} attempt(s); "
                    "is the server running and is --base-url right (e.g. http://127.0.0.1:8000/v1)?"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, why: str) -> None:
        delay = self.backoff * (2**attempt)
        log.warning("chat endpoint %s: %s; retrying in %.1f s", self.url, why, delay)
        time.sleep(delay)

    def _parse(self, raw: bytes) -> str:
        try:
            answer = json.loads(raw)
            content = answer["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            snippet = raw[:300].decode("utf-8", errors="replace")
            raise TextGenerationError(
                f"chat endpoint {self.url} did not answer in the chat completions format "
                f"(choices[0].message.content): {snippet!r}"
            ) from None
        return str(content or "").strip()


class Seq2SeqModel:
    """A local transformers seq2seq model directory (``config.json`` + weights + tokenizer files).

    Loaded with ``local_files_only=True`` (never downloads). Greedy decoding by default (``num_beams=1``,
    ``do_sample=False``), so outputs are deterministic; ``prefix`` is prepended to every prompt (T5 task prefixes).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        device: str = "cpu",
        max_new_tokens: int = 64,
        num_beams: int = 1,
        batch_size: int = 16,
        prefix: str = "",
        generation_kwargs: dict[str, Any] | None = None,
    ):
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise TextGenerationError(
                f"{path}: not a transformers model directory (no config.json); save one with "
                "model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"
            )
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise TextGenerationError(f"{path}: cannot load a seq2seq model and tokenizer from it ({exc})") from None
        self.model.to(device).eval()
        self.model_dir = path
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.prefix = prefix
        self.generation_kwargs = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "do_sample": False,
                                  **(generation_kwargs or {})}

    @property
    def cache_namespace(self) -> str:
        return f"seq2seq|{self.model_dir.resolve()}|{self.prefix}|{sorted(self.generation_kwargs.items())}"

    def generate(self, prompts: list[str]) -> list[str]:
        import torch

        outputs: list[str] = []
        prompts = [self.prefix + p for p in prompts]
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            limit = self.tokenizer.model_max_length if self.tokenizer.model_max_length < 100_000 else 512
            encoded = self.tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=limit)
            encoded = {k: v.to(self.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                generated = self.model.generate(**encoded, **self.generation_kwargs)
            texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            outputs.extend(t.strip() for t in texts)
        return outputs


class CachedGenerator:
    """Generate each prompt once: outputs are kept in a JSONL file (``{"key", "prompt", "output"}`` per line).

    The key is a hash of ``namespace`` (default: the backend's ``cache_namespace``, e.g. URL + model + temperature)
    and the prompt, so another model never reuses these outputs. Misses go to the backend in chunks of ``chunk_size``
    and are appended after each chunk, so an interrupted run loses at most one chunk. Empty outputs are not cached.
    """

    def __init__(self, backend: TextGenerator, path: str | os.PathLike[str], namespace: str | None = None,
                 chunk_size: int = 64):
        self.backend = backend
        self.path = Path(path)
        self.namespace = namespace if namespace is not None else getattr(backend, "cache_namespace",
                                                                          type(backend).__name__)
        self.chunk_size = max(1, int(chunk_size))
        self.hits = 0
        self.misses = 0
        self._outputs: dict[str, str] = {}
        self._load()

    @property
    def cache_namespace(self) -> str:
        return self.namespace

    def key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.namespace}\0{prompt}".encode()).hexdigest()[:32]

    def _load(self) -> None:
        if not self.path.exists():
            return
        bad = 0
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    self._outputs[record["key"]] = str(record["output"])
                except (ValueError, KeyError, TypeError):
                    bad += 1
        if bad:
            log.warning("%s: ignored %d unreadable cache line(s)", self.path, bad)

    def generate(self, prompts: list[str]) -> list[str]:
        prompts = list(prompts)
        keys = [self.key(p) for p in prompts]
        missing: dict[str, str] = {}
        for key, prompt in zip(keys, prompts):
            if key not in self._outputs and key not in missing:
                missing[key] = prompt
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        todo = list(missing.items())
        fresh: dict[str, str] = {}
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            outputs = self.backend.generate([p for _, p in chunk])
            if len(outputs) != len(chunk):
                raise TextGenerationError(f"backend returned {len(outputs)} outputs for {len(chunk)} prompts")
            self._append([(k, p, o) for (k, p), o in zip(chunk, outputs)])
            fresh.update({k: o for (k, _), o in zip(chunk, outputs)})
        return [self._outputs.get(k, fresh.get(k, "")) for k in keys]

    def _append(self, records: list[tuple[str, str, str]]) -> None:
        kept = [(k, p, o) for k, p, o in records if o]
        if not kept:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for key, prompt, output in kept:
                f.write(json.dumps({"key": key, "prompt": prompt, "output": output}, ensure_ascii=False) + "\n")
                self._outputs[key] = output

"""Text generation backends: an OpenAI-compatible chat server (a fake one on 127.0.0.1), the JSONL cache, and a
tiny randomly initialised local T5."""

from __future__ import annotations

import json
import socket

import pytest

from clapkit.textgen import (
    CachedGenerator,
    ChatEndpoint,
    Seq2SeqModel,
    TextGenerationError,
    chat_completions_url,
    clean_generation,
)
from tests.chat_server import FakeChatServer


def test_chat_endpoint_round_trip():
    with FakeChatServer(reply=lambda p: f"  {p.upper()}\nsecond line\n") as server:
        chat = ChatEndpoint(server.base_url, "local-model", api_key="k", temperature=0.2, seed=3, concurrency=2)
        answers = chat.generate(["a dog", "rain", "an owl"])  # in prompt order, raw text (stripped)
        assert answers == ["A DOG\nsecond line", "RAIN\nsecond line", "AN OWL\nsecond line"]
        assert [clean_generation(a) for a in answers] == ["A DOG", "RAIN", "AN OWL"]
    assert sorted(server.prompts) == ["a dog", "an owl", "rain"]
    body = server.requests[0]
    assert body["model"] == "local-model" and body["temperature"] == 0.2 and body["seed"] == 3
    assert body["messages"][0]["role"] == "system" and body["messages"][-1]["role"] == "user"
    assert server.headers[0]["Authorization"] == "Bearer k"


def test_chat_urls_and_errors():
    assert chat_completions_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/x/chat/completions") == "http://h:1/x/chat/completions"
    with pytest.raises(TextGenerationError, match="not an http"):
        ChatEndpoint("", "m")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TextGenerationError, match=r"cannot reach the chat endpoint .* 2 attempt"):
        ChatEndpoint(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0.01).generate(["x"])
    with FakeChatServer(status=404) as server, pytest.raises(TextGenerationError, match="HTTP 404.*'missing'"):
        ChatEndpoint(server.base_url, "missing", retries=0).generate(["x"])
    with FakeChatServer(status=503) as server, pytest.raises(TextGenerationError, match="HTTP 503"):
        ChatEndpoint(server.base_url, "m", retries=2, backoff=0.01).generate(["x"])
    assert len(server.requests) == 3  # 5xx is retried


def test_clean_generation():
    assert clean_generation("\n\n  1. 'A dog barks.'  \nmore") == "A dog barks."
    assert clean_generation("Rewritten description: It rains") == "It rains"
    assert clean_generation('"Caption: A dog barks"') == "A dog barks"
    assert clean_generation("   ") == ""


def test_cache_generates_each_prompt_once(tmp_path):
    path = tmp_path / "cache.jsonl"
    with FakeChatServer() as server:
        cached = CachedGenerator(ChatEndpoint(server.base_url, "m"), path)
        first = cached.generate(["a", "b", "a"])
        assert first == ["echo: a", "echo: b", "echo: a"] and server.prompts == ["a", "b"]
        assert cached.generate(["b", "a"]) == ["echo: b", "echo: a"]
        assert len(server.requests) == 2 and (cached.hits, cached.misses) == (3, 2)
        reopened = CachedGenerator(ChatEndpoint(server.base_url, "m"), path)  # from the file
        assert reopened.generate(["a", "c"]) == ["echo: a", "echo: c"] and server.prompts == ["a", "b", "c"]
        other_model = CachedGenerator(ChatEndpoint(server.base_url, "other"), path)
        other_model.generate(["a"])
        assert len(server.requests) == 4  # another model does not reuse the outputs
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["prompt"] for r in lines] == ["a", "b", "c", "a"]
    with path.open("a") as f:
        f.write("{half a line\n")
    offline = ChatEndpoint("http://127.0.0.1:9/v1", "m", retries=0)  # the server is gone: only the cache answers
    assert CachedGenerator(offline, path, namespace=cached.namespace).generate(["b"]) == ["echo: b"]


def _tiny_t5(directory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = ["<pad>", "</s>", "<unk>", "a", "dog", "barks", "rain", "falls", "the", "sound", "of", "keywords:"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
    config = T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
                      num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    import torch

    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(directory)
    fast.save_pretrained(directory)


def test_seq2seq_backend_plumbing(tmp_path):
    _tiny_t5(tmp_path / "t5")
    model = Seq2SeqModel(tmp_path / "t5", max_new_tokens=5, batch_size=2, prefix="keywords: ")
    outputs = model.generate(["dog barks", "rain", "the sound of rain falls"])
    assert len(outputs) == 3 and all(isinstance(o, str) for o in outputs)
    assert all(set(o.split()) <= {"a", "dog", "barks", "rain", "falls", "the", "sound", "of", "keywords:"}
               for o in outputs)
    assert model.generate(["dog barks"]) == outputs[:1]  # greedy: deterministic
    cached = CachedGenerator(model, tmp_path / "c.jsonl")
    cached.generate(["rain"])
    assert "seq2seq" in cached.namespace
    with pytest.raises(TextGenerationError, match="not a transformers model directory"):
        Seq2SeqModel(tmp_path / "nothing")

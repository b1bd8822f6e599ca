
"""``clapkit download`` against a stand-in hub on 127.0.0.1 (HF_ENDPOINT): resume after a dropped connection, the
transformers-repo file fallbacks, refusal of corrupt files, HF_HUB_OFFLINE."""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load as load_safetensors

import clapkit
from clapkit.cli import main
from tests.hub.builders import COMMIT, tokenizer_files
from tests.hub.standin import StandInHub


@pytest.fixture
def hub(hub_cache, monkeypatch):
    with StandInHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def _snapshot(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--")) / "snapshots" / COMMIT


def test_interrupted_download_resumes_with_a_range_request(hub, hub_cache, small_registry, laion_file, monkeypatch,
                                                           capsys):  # fmt: skip
    data, module = laion_file
    hub.add("lukewys/laion_clap", {"630k-audioset-best.pt": data})
    hub.add("roberta-base", tokenizer_files("roberta"))
    hub.drop_once.add("630k-audioset-best.pt")
    # huggingface_hub writes what it has read in chunks of 10 MB; a small file needs small chunks to be cut mid-way
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)
    assert main(["download", "630k-audioset-best", "--quiet"]) == 0
    sha = hashlib.sha256(data).hexdigest()
    gets = [rng for method, path, rng in hub.log if method == "GET" and path == f"/cdn/{sha}"]
    assert len(gets) == 2 and gets[0] is None  # the first attempt is cut at half the file ...
    start = int(gets[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= len(data) // 2  # ... and the second asks only for the rest
    cached = _snapshot(hub_cache, "lukewys/laion_clap") / "630k-audioset-best.pt"
    assert cached.read_bytes() == data and cached.is_symlink()
    assert capsys.readouterr().out.strip() == str(cached)
    assert (_snapshot(hub_cache, "roberta-base") / "vocab.json").is_file()
    # offline from now on: same weights, tokenizer from the cache
    hub.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = clapkit.load("630k-audioset-best")
    assert hub.log == [] and model.tokenizer is not None
    assert torch.equal(model.module.text_projection[2].weight, module.text_projection[2].weight)


def test_transformers_repo_falls_back_to_pytorch_model_bin(hub, hub_cache, hf_files):
    files, module = hf_files
    buffer = io.BytesIO()
    torch.save(load_safetensors(files["model.safetensors"]), buffer)  # the HF ports' main branch has only .bin
    repo = {k: v for k, v in files.items() if k != "model.safetensors"}
    hub.add("laion/clap-htsat-unfused", {**repo, "pytorch_model.bin": buffer.getvalue(),
                                         **{k: v for k, v in tokenizer_files("roberta").items() if k != "config.json"}})
    model = clapkit.load("laion/clap-htsat-unfused", download=True)
    heads = [path.rsplit("/", 1)[1] for method, path, _ in hub.log if method == "HEAD"]
    assert heads[:3] == ["config.json", "model.safetensors", "model.safetensors.index.json"]
    assert "pytorch_model.bin" in heads and "vocab.json" in heads
    assert model.tokenizer is not None  # the repo's own tokenizer files
    assert torch.equal(model.module.audio_projection[0].weight, module.audio_projection[0].weight)
    hub.log.clear()
    assert main(["download", "laion/clap-htsat-unfused", "--quiet"]) == 0  # already there: verified, not refetched
    assert not [p for m, p, _ in hub.log if m == "GET"]


@pytest.mark.parametrize("damage", ["garbage", "wrong-hash"])
def test_corrupt_download_is_refused_and_removed(damage, hub, hub_cache, msclap_file, small_registry, capsys):
    data = b"not a checkpoint" * 1000 if damage == "garbage" else msclap_file[0]
    hub.add("microsoft/msclap", {"CLAP_weights_2023.pth": data})
    if damage == "wrong-hash":
        hub.lie_about_hash.add("CLAP_weights_2023.pth")
    assert main(["download", "CLAP_weights_2023", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "refused and removed from the cache" in err and "Traceback" not in err
    assert ("content hash" in err) == (damage == "wrong-hash")
    folder = hub_cache / "models--microsoft--msclap"
    assert not (folder / "snapshots" / COMMIT / "CLAP_weights_2023.pth").exists()
    assert [p.name for p in (folder / "blobs").iterdir()] == []
    with pytest.raises(clapkit.CheckpointError, match="not in the Hugging Face cache"):
        clapkit.load("CLAP_weights_2023")


def test_a_genuine_file_that_needs_unpickling_is_kept_not_deleted(hub, hub_cache, small_registry, laion_file, capsys):
    obj = torch.load(io.BytesIO(laion_file[0]), weights_only=True)
    obj["args"] = argparse.Namespace(lr=1e-4)  # a Python object beside the weights: weights_only refuses the file
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    hub.add("lukewys/laion_clap", {"630k-best.pt": buffer.getvalue()})
    hub.add("roberta-base", tokenizer_files("roberta"))
    assert main(["download", "630k-best", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "identical to the hub's file (kept in the cache)" in err and "--trust-pickle" in err
    cached = _snapshot(hub_cache, "lukewys/laion_clap") / "630k-best.pt"
    assert cached.read_bytes() == buffer.getvalue()
    with pytest.raises(clapkit.CheckpointError, match="trust_pickle=True"):
        clapkit.load("630k-best")
    hub.log.clear()
    assert main(["download", "630k-best", "--quiet", "--trust-pickle"]) == 0
    assert not [p for m, p, _ in hub.log if m == "GET" and p.startswith("/cdn/")]  # verified in place, not refetched
    assert clapkit.load("630k-best", trust_pickle=True).config.name == "laion-htsat-tiny"


def test_clapcap_is_verified_by_its_keys_with_progress_bars(hub, hub_cache, monkeypatch, capsys):
    state = {"clap.base.htsat.norm.weight": torch.rand(8), "gpt.transformer.wte.weight": torch.rand(4, 8)}
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)
    hub.add("microsoft/msclap", {"clapcap_weights_2023.pth": buffer.getvalue()})
    hub.add("gpt2", tokenizer_files("gpt2"))
    monkeypatch.setenv("TQDM_POSITION", "-1")  # huggingface_hub draws its bars even without a terminal
    assert main(["download", "clapcap_weights_2023"]) == 0
    err = capsys.readouterr().err
    assert "clapcap_weights_2023.pth" in err and "100%" in err and "is ready in" in err  # tqdm on stderr
    assert (_snapshot(hub_cache, "gpt2") / "vocab.json").is_file()  # its tokenizer came with it
    hub.add("microsoft/msclap", {"CLAP_weights_2022.pth": buffer.getvalue()})  # keys of clapcap, not of CLAP 2022
    assert main(["download", "CLAP_weights_2022", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "refused and removed" in err and "100%" not in err  # --quiet: no bars


def test_a_tokenizer_alone(hub, hub_cache, capsys):
    hub.add("roberta-base", tokenizer_files("roberta"))
    assert main(["download", "roberta-base", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(_snapshot(hub_cache, "roberta-base"))
    assert sorted(p.name for p in _snapshot(hub_cache, "roberta-base").iterdir()) == ["config.json", "merges.txt",
                                                                                     "vocab.json"]  # fmt: skip
    # followed the hub's relative redirect of the legacy id, as huggingface_hub does
    assert any(p.startswith("/FacebookAI/roberta-base/resolve/main/") for _, p, _ in hub.log)


def test_offline_mode_refuses_to_download(hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["download", "630k-best"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err and hub.log == []


def test_unknown_repo_and_file_are_clear_errors(hub, capsys):
    hub.add("lukewys/laion_clap", {})
    assert main(["download", "someone/no-such-clap", "--quiet"]) == 2
    assert "someone/no-such-clap/config.json: the hub has no repo 'someone/no-such-clap'" in capsys.readouterr().err
    with pytest.raises(clapkit.CheckpointError, match=r"lukewys/laion_clap/630k-best.pt: the repo has no such file"):
        clapkit.load("630k-best", download=True)

"""Small checkpoints in each public family's own on-disk format, tokenizer files, and a Hugging Face cache laid out as
huggingface_hub lays it out (``models--ORG--NAME/{blobs,refs/main,snapshots/REV}``).

The real public files are hundreds of MB (full RoBERTa / GPT-2 text towers), so the text towers are shrunk and the
HTSAT has two stages; the registry configs LAION / MS-CLAP detection starts from are swapped for shrunk ones with
``small_registry`` (the audio tower is still read off the file). Every learned tensor is perturbed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path

import torch

from clapkit import registry
from clapkit.checkpoints import hf, laion, msclap
from clapkit.models.clap import ClapNetwork

SMALL_ROBERTA = {"model_type": "roberta", "vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 80,
                 "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0,
                 "eos_token_id": 2}  # fmt: skip
SMALL_GPT2 = {"model_type": "gpt2", "vocab_size": 300, "n_positions": 80, "n_embd": 32, "n_layer": 1, "n_head": 2,
              "pad_token_id": 0}  # fmt: skip
SMALL_HTSAT = {"depths": (1, 1), "num_heads": (1, 2), "embed_dim": 192, "num_classes": 10}  # width 96, two stages
SMALL_HF_RAW = {"model_type": "clap", "projection_dim": 32,
                "audio_config": {"patch_embeds_hidden_size": 16, "hidden_size": 32, "depths": [1, 1],
                                 "num_attention_heads": [1, 2], "num_classes": 10, "enable_fusion": False},
                "text_config": {"vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                "intermediate_size": 64, "max_position_embeddings": 80}}  # fmt: skip
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


def small_registry() -> dict:
    """Registry configs with shrunk text towers, for ``monkeypatch.setitem(registry._REGISTERED, k, v)``."""
    tiny, ms = registry.get_config("laion-htsat-tiny"), registry.get_config("ms-clap-2023")
    return {
        "laion-htsat-tiny": tiny.replace(text=dataclasses.replace(tiny.text, hf_config=SMALL_ROBERTA, width=32)),
        "ms-clap-2023": ms.replace(text=dataclasses.replace(ms.text, hf_config=SMALL_GPT2, width=32)),
    }


def perturbed(config, seed: int = 0) -> ClapNetwork:
    """A ``ClapNetwork`` of ``config`` whose every float tensor is non-trivial (biases, batch-norm statistics...)."""
    torch.manual_seed(seed)
    module = ClapNetwork(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not name.endswith("attn_mask"):
                bump = torch.rand(tensor.shape, generator=gen)
                tensor.copy_(0.5 + bump if name.endswith("running_var") else tensor + 0.05 * (bump - 0.5))
    return module


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def laion_file(small: dict) -> tuple[bytes, ClapNetwork]:
    """A LAION-CLAP .pt (DDP prefix, epoch) of a perturbed HTSAT-tiny(2 stages) + small RoBERTa."""
    base = small["laion-htsat-tiny"]
    module = perturbed(base.replace(audio=dataclasses.replace(base.audio, **SMALL_HTSAT), joint_dim=64))
    state = {"module." + k: v for k, v in laion.from_clapkit(module.state_dict()).items()}
    return _torch_bytes({"epoch": 45, "state_dict": state}), module


def msclap_file(small: dict) -> tuple[bytes, ClapNetwork]:
    """An MS-CLAP 2023 .pth ({'model': ...} with torchlibrosa buffers) of a perturbed small HTSAT + small GPT-2."""
    base = small["ms-clap-2023"]
    module = perturbed(base.replace(audio=dataclasses.replace(base.audio, **SMALL_HTSAT), joint_dim=64), seed=1)
    return _torch_bytes({"model": msclap.from_clapkit(module.state_dict(), module.config)}), module


def hf_directory(tmp: Path) -> tuple[dict[str, bytes], ClapNetwork]:
    """The files of a transformers CLAP repo (config, processor, model.safetensors) of a perturbed small model."""
    module = perturbed(hf.config_from_hf(SMALL_HF_RAW, None, "test"), seed=2)
    hf.save_hf(tmp, module.config, module.state_dict())
    return {p.name: p.read_bytes() for p in sorted(tmp.iterdir())}, module


def tokenizer_files(model_type: str) -> dict[str, bytes]:
    """A byte-level BPE tokenizer (every byte a token, no merges) in the files of a hub tokenizer repo."""
    from clapkit.tokenizers import _bytes_to_unicode

    specials = ["<s>", "<pad>", "</s>", "<unk>"] if model_type == "roberta" else ["<|endoftext|>"]
    tokens = specials + sorted(set(_bytes_to_unicode().values()))
    return {
        "config.json": json.dumps({"model_type": model_type}).encode(),
        "vocab.json": json.dumps({t: i for i, t in enumerate(tokens)}).encode(),
        "merges.txt": b"#version: 0.2\n",
    }


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def blob_name(filename: str, data: bytes) -> str:
    """What huggingface_hub names a blob: the sha256 of an LFS file, the git blob sha1 of any other."""
    return hashlib.sha256(data).hexdigest() if filename.endswith(LFS_SUFFIXES) else git_blob_sha1(data)


def put_in_cache(cache: Path, repo: str, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """Lay ``files`` out in ``cache`` exactly as hf_hub_download does; returns the snapshot directory."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    for name, data in files.items():
        blob = folder / "blobs" / blob_name(name, data)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot

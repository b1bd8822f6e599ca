"""Build MS-CLAP's captioning model (msclap 1.3.4, version 'clapcap') with random, perturbed weights and write what
the caption parity tests compare against.

Run with the REFERENCE environment's Python, never imported by clapkit:

    .venv-ref/bin/python tests/parity/reference_clapcap.py --out .cache/parity

msclap builds everything itself (``CLAPWrapper(version='clapcap')``: its config_clapcap.yml, ``get_clapcap``,
``ClapCaptionModel``), offline (``offline.py``): ``from_pretrained('gpt2')`` builds a small GPT-2 (``GPT2_TINY``: 2
layers, width 128, the vocabulary of ``gpt2_vocab.py``) with random weights, ``AutoTokenizer.from_pretrained('gpt2')``
reads that vocabulary, ``torchaudio.load`` reads with soundfile (torchaudio's C++ extension does not load beside
torch 2.13).
Variants: ``transformer`` (msclap's config as shipped) and ``mlp`` (the same config with ``mapping_type: mlp`` and
``prefix_length: 10``). Every learned tensor is perturbed; the HTSAT batch norms are calibrated on three clips.

Outputs per variant: ``clapcap_<variant>.pth`` (``{'model': state_dict}``, msclap's format) and
``clapcap_<variant>.npz``: the clips, msclap's prefix embeddings (``generate_caption``'s ``prefix_embed``) and, per
clip and decoding setting, the token ids of the caption ``generate_caption`` returns (read by recording what it
hands to ``tokenizer.decode``) and its text. ``clapcap_tokenizer/`` holds the vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import offline  # noqa: E402
from gpt2_vocab import write_gpt2_tokenizer  # noqa: E402

SAMPLE_RATE = 44100
CLIPS = {"short": 2.3, "exact": 7.0, "long": 10.0}  # seconds; long: msclap's random 7 s crop pinned to offset 0
# (clip, beam_size, entry_length, temperature)
SETTINGS = {
    "transformer": [(c, b, 67, 1.0) for c in CLIPS for b in (1, 5)] + [("short", 5, 12, 1.0), ("exact", 5, 67, 0.7)],
    "mlp": [("short", 1, 67, 1.0), ("exact", 5, 67, 1.0)],
}
VARIANTS = {"transformer": {}, "mlp": {"mapping_type": "mlp", "prefix_length": 10}}
GPT2_TINY = {"n_positions": 128, "n_embd": 128, "n_layer": 2, "n_head": 2}
STOP_ID = 220  # GPT-2's space: the first token of msclap's stop text ' <|endoftext|>'
FORMAT_VERSION = 1


def install_offline(tokenizer_dir: Path, vocab_size: int, gpt2: dict | None = None) -> None:
    """Offline msclap (``offline.py``) with this builder's GPT-2: ``from_pretrained('gpt2')`` builds GPT-2 with
    ``gpt2`` (default ``GPT2_TINY``) and random weights, ``AutoTokenizer.from_pretrained('gpt2')`` reads the
    ``gpt2_vocab.py`` vocabulary already written to ``tokenizer_dir`` (the one clapkit is given too)."""

    def config():
        from transformers import GPT2Config

        sizes = GPT2_TINY if gpt2 is None else gpt2
        return GPT2Config(vocab_size=vocab_size, bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1, **sizes)

    offline.register_model("gpt2", config)
    offline.register_tokenizer_files("gpt2", "GPT2Tokenizer", tokenizer_dir)
    offline.install()


def clip(seconds: float, freq: float, seed: int):
    """Deterministic test audio: noise + a modulated tone + clicks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    x = 0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
    x[:: SAMPLE_RATE // 4] += 0.8
    return np.clip(x, -1, 1).astype(np.float32)


def build_wrapper(variant: str, seed: int):
    """msclap's own clapcap model with random weights (``offline.msclap_wrapper``), the variant's config changes
    applied."""
    import torch

    torch.manual_seed(seed)
    return offline.msclap_wrapper("clapcap", config_changes=VARIANTS[variant])


def perturb_and_calibrate(wrapper, seed: int) -> None:
    """Every learned tensor (not torchlibrosa's fixed front-end parameters) gets noise: 0.02 std, GPT-2's 0.2 and
    its token/position embeddings 0.3, so its next-token distributions are far from uniform and vary along a caption
    (a randomly initialised GPT-2 repeats one token); the stop token's row is scaled by 1.6 so that some beams stop
    early. Then the HTSAT batch norms get statistics from three clips."""
    import numpy as np
    import torch

    model = wrapper.clapcap
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if "spectrogram_extractor." in name or "logmel_extractor." in name:
                continue  # torchlibrosa's STFT kernels and mel filterbank: fixed functions, not learned
            noise = torch.randn(tensor.shape, generator=gen)
            scale = 0.02
            if name.startswith("gpt."):
                scale = 0.3 if name.endswith(("wte.weight", "wpe.weight")) else 0.2
            tensor.add_(scale * noise)
        model.gpt.transformer.wte.weight[STOP_ID] *= 1.6
    norms = [m for m in model.clap.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    batch = torch.from_numpy(np.stack([clip(7.0, 150.0 * (i + 2), 100 + i) for i in range(3)]))
    with torch.no_grad():
        model.clap(batch)
    for norm in norms:
        norm.momentum = 0.1
        norm.eval()
    model.eval()


def prefix_embeddings(wrapper, path: str):
    """``generate_caption``'s prefix, computed by its own steps."""
    import torch

    with torch.no_grad():
        audio = wrapper.preprocess_audio([path], resample=True)
        prefix = wrapper.clapcap.clap(audio.squeeze(1))[0]
        if wrapper.args.normalize_prefix:
            prefix = prefix / prefix.norm(2, -1).reshape(-1, 1)
        width = wrapper.clapcap.gpt.transformer.wte.weight.shape[1]
        return wrapper.clapcap.clap_project(prefix).view(-1, wrapper.args.prefix_length, width).numpy()


def caption_ids(wrapper, path: str, beam_size: int, entry_length: int, temperature: float) -> tuple[list[int], str]:
    """The ids and text of ``generate_caption``'s caption: decode is recorded (returning a marker per call)."""
    tokenizer = wrapper.tokenizer
    real_decode, calls = tokenizer.decode, []

    def recording(ids, *args, **kwargs):
        calls.append([int(i) for i in ids])
        return f"\x00{len(calls) - 1}"

    tokenizer.decode = recording
    try:
        (marker,) = wrapper.generate_caption([path], resample=True, beam_size=beam_size,
                                             entry_length=entry_length, temperature=temperature)
    finally:
        tokenizer.decode = real_decode
    ids = calls[int(marker[1:])]
    return ids, real_decode(ids).capitalize()


def variant_outputs(variant: str, out: Path) -> dict:
    import numpy as np
    import soundfile as sf
    import torch

    wrapper = build_wrapper(variant, seed=3)
    perturb_and_calibrate(wrapper, seed=4)
    assert wrapper.tokenizer.encode(" <|endoftext|>")[0] == STOP_ID
    arrays: dict = {}
    paths = {}
    for i, (name, seconds) in enumerate(CLIPS.items()):
        wave = clip(seconds, 220.0 * (i + 1), 10 + i)
        paths[name] = str(out / f"clapcap_{variant}_{name}.wav")
        sf.write(paths[name], wave, SAMPLE_RATE, subtype="FLOAT")
        arrays[f"wave_{name}"] = wave
    original_randrange = random.randrange
    random.randrange = lambda *a, **k: 0  # msclap crops long audio at a random offset; clapkit at 0
    try:
        for name, path in paths.items():
            arrays[f"prefix_{name}"] = prefix_embeddings(wrapper, path)
        settings = []
        for name, beam, entry, temperature in SETTINGS[variant]:
            ids, text = caption_ids(wrapper, paths[name], beam, entry, temperature)
            key = f"{name}_b{beam}_e{entry}_t{temperature:g}"
            arrays[f"ids_{key}"] = np.array(ids, dtype=np.int64)
            settings.append({"key": key, "clip": name, "beam_size": beam, "entry_length": entry,
                             "temperature": temperature, "text": text, "tokens": len(ids)})
    finally:
        random.randrange = original_randrange
    for path in paths.values():
        os.unlink(path)
    torch.save({"model": wrapper.clapcap.state_dict()}, out / f"clapcap_{variant}.pth")
    np.savez(out / f"clapcap_{variant}.npz", **arrays)
    args = wrapper.args
    return {"settings": settings, "prefix_length": args.prefix_length, "mapping_type": args.mapping_type}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vocab_size = write_gpt2_tokenizer(args.out / "clapcap_tokenizer")
    install_offline(args.out / "clapcap_tokenizer", vocab_size)
    import torch

    torch.set_num_threads(2)
    manifest: dict = {"format": FORMAT_VERSION, "gpt2": {**GPT2_TINY, "vocab_size": vocab_size}, "variants": {}}
    for variant in VARIANTS:
        start = time.time()
        manifest["variants"][variant] = variant_outputs(variant, args.out)
        print(f"[reference] clapcap {variant}: {time.time() - start:.1f} s", flush=True)
    import importlib.metadata as md

    manifest["packages"] = {p: md.version(p) for p in ("torch", "msclap", "transformers", "numpy")}
    (args.out / "clapcap_manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

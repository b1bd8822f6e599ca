"""Build MS-CLAP 2022 and 2023 (msclap 1.3.4) with random weights and write what the parity tests compare against.

Run with the REFERENCE environment's Python (see scripts/setup_reference_env.sh), never imported by clapkit:

    .venv-ref/bin/python tests/parity/reference_msclap.py --out .cache/parity [--versions 2022 2023]

For each version it writes ``msclap_<version>.pth`` (``{'model': state_dict}``, the keys exactly as msclap's ``CLAP``
module has them: msclap's own on-disk format), ``msclap_<version>.npz`` (inputs and reference outputs) and
``msclap_tokenizers/<version>/`` (msclap's tokenizer as ``save_pretrained`` writes it; the FAKE vocabularies of
``../shared/refs/offline_shims.py``, so ids are not the real BERT/GPT-2 ids). The offline shims and builders come
from ``../shared/refs``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFS = Path(__import__("os").environ.get("CLAPKIT_SHARED_REFS", ROOT.parent / "shared" / "refs"))
sys.path.insert(0, str(REFS))

import offline_shims  # noqa: E402

offline_shims.install()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SAMPLE_RATE = 44100
# "!" is GPT-2's id 0, msclap's pad id: the second caption exercises msclap's last-token rule on a real "!"
CAPTIONS = ["A dog barks in the distance.", "Wow! Rain falls on a metal roof!", "A man speaks", "Birds chirp at night."]
# seconds: "short" is repeated to the clip, "exact" is one clip, "long*" go into the model whole (model level)
CLIPS = {"2022": {"short": 2.3, "exact": 5.0, "long": 10.0}, "2023": {"short": 2.3, "exact": 7.0, "long": 10.0,
                                                                     "long8": 8.0}}
FORMAT_VERSION = 1


def clip(seconds: float, freq: float, seed: int) -> np.ndarray:
    """Deterministic test audio: noise + a modulated tone + clicks."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    x = 0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
    x[:: SAMPLE_RATE // 4] += 0.8
    return np.clip(x, -1, 1).astype(np.float32)


def calibrate_batch_norm(ref, seconds: float) -> None:
    """Set the audio encoder's BatchNorm running statistics from three calibration clips (weights untouched).

    Built with random weights, msclap's encoders keep BatchNorm at mean 0 / variance 1; Cnn14's default-initialised
    convolutions then shrink the signal layer by layer until fc1's bias dominates, and 2022's embedding hardly depends
    on the audio (cosine 0.9999999 between unrelated clips), which would make a parity test that cannot see a wrong
    front end. Statistics measured on real-ish input keep every layer's activations near unit scale.
    """
    norms = [m for m in ref.model.audio_encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration batch
        norm.train()
    batch = torch.from_numpy(np.stack([clip(seconds, 150.0 * (i + 2), 100 + i) for i in range(3)]))
    with torch.no_grad():
        ref.api_audio(batch)
    for norm in norms:
        norm.momentum = 0.1
        norm.eval()


def normalized(x: torch.Tensor) -> np.ndarray:
    return F.normalize(x.detach().float(), dim=-1).numpy()


def msclap_outputs(version: str, out: Path) -> dict:
    import ref_models

    ref = ref_models.BUILDERS[f"msclap_{version}"]()  # torch.manual_seed(0); random init; eval mode
    wrapper, clap = ref.extra["wrapper"], ref.model
    assert wrapper.args.sampling_rate == SAMPLE_RATE
    calibrate_batch_norm(ref, float(wrapper.args.duration))
    arrays: dict[str, np.ndarray] = {"captions": np.array(CAPTIONS)}
    waves = {key: clip(sec, 220.0 * (i + 1), i) for i, (key, sec) in enumerate(CLIPS[version].items())}
    with torch.no_grad():
        for key, wave in waves.items():
            arrays[f"wave_{key}"] = wave
            if key in ("short", "exact"):  # public API end to end: file -> fit to `duration` -> model
                path = out / f"msclap_{version}_{key}.wav"
                sf.write(str(path), wave, SAMPLE_RATE, subtype="FLOAT")
                arrays[f"audio_{key}"] = normalized(wrapper.get_audio_embeddings([str(path)], resample=True))
                path.unlink()
            # model level: the waveform as is (msclap's step after file loading); long clips run whole
            arrays[f"model_audio_{key}"] = normalized(ref.api_audio(torch.from_numpy(wave)[None]))
        arrays["logmel_exact"] = ref.frontend(torch.from_numpy(waves["exact"])[None]).numpy()  # (1, 1, T, 64)
        tokens = wrapper.preprocess_text(CAPTIONS)
        arrays["text_input_ids"] = tokens["input_ids"].numpy()
        arrays["text_attention_mask"] = tokens["attention_mask"].numpy()
        arrays["text_embed"] = normalized(wrapper.get_text_embeddings(CAPTIONS))
        arrays["logit_scale"] = clap.logit_scale.exp().numpy()
    torch.save({"model": clap.state_dict()}, out / f"msclap_{version}.pth")
    wrapper.tokenizer.save_pretrained(str(out / "msclap_tokenizers" / version))
    np.savez(out / f"msclap_{version}.npz", **arrays)
    return {"text_model": wrapper.args.text_model, "audio_encoder": wrapper.args.audioenc_name,
            "duration": wrapper.args.duration, "recipe": ref.recipe,
            "calibration": "audio encoder BatchNorm running statistics from 3 clips (seeds 100-102) before saving"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--versions", nargs="*", default=list(CLIPS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    manifest: dict = {"format": FORMAT_VERSION, "versions": {}}
    for version in args.versions:
        start = time.time()
        manifest["versions"][version] = msclap_outputs(version, args.out)
        print(f"[reference] msclap {version}: {time.time() - start:.1f} s", flush=True)
    import importlib.metadata as md

    manifest["packages"] = {p: md.version(p) for p in ("torch", "msclap", "transformers", "numpy", "torchlibrosa")}
    (args.out / "msclap_manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

"""Build the reference models with random weights and write what the parity tests compare against.

Run with the REFERENCE environment's Python (laion_clap 1.1.7, msclap 1.3.4, transformers 4.57.6; see
scripts/setup_reference_env.sh), never imported by clapkit itself:

    .venv-ref/bin/python tests/parity/reference_laion.py --out .cache/parity [--models laion_htsat_tiny ...]

For each model it writes ``<name>.pt`` (the checkpoint in the family's own on-disk format, exactly as a user would
have it) and ``<name>.npz`` (inputs and reference outputs). The offline shims and builders come from ``../shared/refs``.
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
import torch  # noqa: E402

CAPTIONS = ["A dog barks in the distance.", "Rain falls on a metal roof", "A man speaks", "Birds chirp at night."]
FORMAT_VERSION = 1


def waveforms(sample_rate: int) -> dict[str, np.ndarray]:
    """Deterministic test audio: noise + tones + clicks, of several lengths."""
    rng = np.random.default_rng(0)

    def clip(seconds: float, freq: float) -> np.ndarray:
        n = int(round(seconds * sample_rate))
        t = np.arange(n) / sample_rate
        x = 0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
        x[:: sample_rate // 4] += 0.8
        return np.clip(x, -1, 1).astype(np.float32)

    return {"clip_10s": clip(10.0, 440.0), "clip_4s": clip(4.0, 1200.0), "clip_7_3s": clip(7.3, 90.0)}


def save_laion_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """LAION's training loop saves {'epoch', 'name', 'state_dict' (DDP 'module.' prefix), 'optimizer'}."""
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 45, "name": path.stem, "state_dict": state}, path)


def laion_outputs(name: str, amodel: str, tmodel: str, fusion: bool, out: Path) -> dict:
    import laion_clap
    from laion_clap.clap_module import create_model
    from laion_clap.training.data import get_audio_features

    torch.manual_seed(0)
    if tmodel == "roberta":
        module = laion_clap.CLAP_Module(enable_fusion=fusion, amodel=amodel, tmodel=tmodel, device="cpu")
        clap, audio_cfg = module.model, module.model_cfg["audio_cfg"]
    else:  # CLAP_Module always builds RoBERTa; other text towers come from create_model
        kwargs = {"fusion_type": "aff_2d"} if fusion else {}
        clap, cfg = create_model(amodel, tmodel, precision="fp32", device="cpu", enable_fusion=fusion, **kwargs)
        module, audio_cfg = None, cfg["audio_cfg"]
    clap.eval()
    arrays: dict[str, np.ndarray] = {"captions": np.array(CAPTIONS)}
    with torch.no_grad():
        clips = waveforms(48000)
        for key, w in clips.items():
            arrays[f"wave_{key}"] = w
            # public API, numpy path (int16 round trip included). Not for PANN fusion: laion's PANN marks a random
            # item of an all-short batch as "longer" even in eval, so its public-API output depends on the batch;
            # clapkit never does (documented deviation) and PANN fusion is compared at model level instead.
            if module is not None and not (fusion and amodel.startswith("PANN")):
                arrays[f"audio_{key}"] = module.get_audio_embedding_from_data([w], use_tensor=False)
        # model level: the same front-end features into both (fusion models also with a long clip)
        long = np.tile(clips["clip_7_3s"], 4)[: 48000 * 25]
        rng_state = np.random.get_state()
        np.random.seed(0)
        feats = [
            get_audio_features(
                {},
                torch.from_numpy(w),
                480000,
                data_truncating="fusion" if fusion else "rand_trunc",
                data_filling="repeatpad",
                audio_cfg=audio_cfg,
            )
            for w in (clips["clip_10s"], clips["clip_4s"], long)
        ]
        np.random.set_state(rng_state)
        if fusion:
            arrays["model_mel_fusion"] = torch.stack([f["mel_fusion"] for f in feats]).numpy()
            arrays["model_is_longer"] = torch.cat([f["longer"] for f in feats]).numpy()
            arrays["model_audio"] = clap.get_audio_embedding(feats).numpy()
        else:
            ab = clap.audio_branch
            wave = torch.stack([f["waveform"] for f in feats[:2]])
            arrays["model_logmel"] = ab.logmel_extractor(ab.spectrogram_extractor(wave)).numpy()  # (B,1,T,64)
            arrays["model_audio"] = clap.get_audio_embedding(feats[:2]).numpy()
        if tmodel == "transformer":
            from laion_clap.clap_module.tokenizer import tokenize

            ids = tokenize(CAPTIONS)  # CLIP BPE, 77 tokens
            arrays["text_input_ids"] = ids.numpy()
            arrays["text_attention_mask"] = (ids != 0).long().numpy()
            arrays["text_embed"] = torch.nn.functional.normalize(clap.encode_text(ids, device="cpu"), dim=-1).numpy()
        else:
            from transformers import BertTokenizer, RobertaTokenizer

            tok_cls = RobertaTokenizer if tmodel == "roberta" else BertTokenizer
            tok = tok_cls.from_pretrained("roberta-base" if tmodel == "roberta" else "bert-base-uncased")
            enc = tok(CAPTIONS, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
            arrays["text_input_ids"] = enc["input_ids"].numpy()
            arrays["text_attention_mask"] = enc["attention_mask"].numpy()
            arrays["text_embed"] = clap.get_text_embedding(dict(enc)).numpy()
        arrays["logit_scale_a"] = clap.logit_scale_a.exp().numpy()
    save_laion_checkpoint(clap, out / f"{name}.pt")
    np.savez(out / f"{name}.npz", **arrays)
    return {"amodel": amodel, "tmodel": tmodel, "fusion": fusion}


MODELS = {
    "laion_htsat_tiny": ("HTSAT-tiny", "roberta", False),
    "laion_htsat_tiny_fusion": ("HTSAT-tiny", "roberta", True),
    "laion_htsat_base": ("HTSAT-base", "roberta", False),
    "laion_pann14": ("PANN-14", "roberta", False),
    "laion_pann14_fusion": ("PANN-14", "roberta", True),
    "laion_htsat_tiny_bert": ("HTSAT-tiny", "bert", False),
    "laion_htsat_tiny_clip": ("HTSAT-tiny", "transformer", False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    manifest = {"format": FORMAT_VERSION, "models": {}}
    for name in args.models:
        start = time.time()
        manifest["models"][name] = laion_outputs(name, *MODELS[name], args.out)
        print(f"[reference] {name}: {time.time() - start:.1f} s", flush=True)
    import importlib.metadata as md

    manifest["versions"] = {p: md.version(p) for p in ("torch", "laion_clap", "transformers", "numpy")}
    (args.out / "laion_manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

"""Build LAION-CLAP references (laion_clap 1.1.7) and write what ``tests/parity/test_laion.py`` compares against.

Run with the REFERENCE environment's Python (``.venv-ref``; scripts/setup_reference_env.sh), never by clapkit:

    .venv-ref/bin/python tests/parity/reference_laion.py --out DIR [--models laion_htsat_tiny ...]

Each model is built by laion_clap's own ``CLAP_Module`` offline (``tests/parity/offline.py``), every learned tensor
perturbed, batch norms calibrated on test signals, ``logit_scale_a``/``logit_scale_t`` set to distinct values
(``tests/parity/refkit.py``). Written per model: ``<name>.pt`` (LAION's training-checkpoint layout, DDP ``module.``
prefix), ``<name>.npz`` (inputs and laion_clap's outputs) and, for RoBERTa, the tokenizer files laion_clap used
(``laion_tokenizers/roberta``).

Audio: laion_clap's public numpy API (``get_audio_embedding_from_data``, int16 round trip included) on two short
clips, except PANN fusion (laion's Cnn14 marks a random item of an all-short batch "longer" even in eval; clapkit
keeps LAION's rule, so there the same features go through laion's model next to a long clip, which keeps the flag)
and PANN CNN10/CNN6 (laion's own CLAP model passes them a dict they cannot read: the numpy API's steps are followed
by a direct call of the audio branch and projection).
Fusion models also run a 13 s clip at model level (laion's random chunk starts; the features are stored). Text:
laion_clap's tokenizer + model on four captions (RoBERTa: ``CLAP_Module.get_text_embedding``).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import offline  # noqa: E402

offline.install()

import numpy as np  # noqa: E402
import refkit  # noqa: E402
import torch  # noqa: E402

RATE = 48000
CLIPS = {"a": (3.0, 1), "b": (10.0, 2)}  # name -> (seconds, seed): a is repeat-padded, b fills one 10 s window
LONG = (13.0, 3)  # fusion: > 10 s, three local chunks + the global view
# name -> (amodel, tmodel, fusion). BART text towers: the BART reference builder adds its entries and a
# TEXT_REFERENCES["bart"] function (below) from its own module.
MODELS = {
    "laion_htsat_tiny": ("HTSAT-tiny", "roberta", False),
    "laion_htsat_tiny_fusion": ("HTSAT-tiny", "roberta", True),
    "laion_htsat_base": ("HTSAT-base", "roberta", False),
    "laion_htsat_base_fusion": ("HTSAT-base", "roberta", True),
    "laion_htsat_large": ("HTSAT-large", "roberta", False),
    "laion_htsat_large_fusion": ("HTSAT-large", "roberta", True),
    "laion_pann14": ("PANN-14", "roberta", False),
    "laion_pann14_fusion": ("PANN-14", "roberta", True),
    "laion_pann10": ("PANN-10", "roberta", False),
    "laion_pann6": ("PANN-6", "roberta", False),
    "laion_htsat_tiny_bert": ("HTSAT-tiny", "bert", False),
    "laion_htsat_tiny_clip": ("HTSAT-tiny", "transformer", False),
}


def _text_roberta(module, clap, out: Path) -> dict[str, np.ndarray]:
    enc = module.tokenizer(refkit.CAPTIONS)  # RobertaTokenizer, padded to 77
    module.tokenize.save_pretrained(str(out / "laion_tokenizers" / "roberta"))
    embed = module.get_text_embedding(refkit.CAPTIONS, use_tensor=False)
    return {"ids": enc["input_ids"].numpy(), "mask": enc["attention_mask"].numpy(), "embed": embed}


def _text_bert(module, clap, out: Path) -> dict[str, np.ndarray]:
    from transformers import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained("bert-base-uncased")  # the real vocabulary (offline.py)
    enc = tokenizer(refkit.CAPTIONS, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    embed = module.get_text_embedding(refkit.CAPTIONS, tokenizer=lambda texts: dict(enc), use_tensor=False)
    return {"ids": enc["input_ids"].numpy(), "mask": enc["attention_mask"].numpy(), "embed": embed}


def _text_clip(module, clap, out: Path) -> dict[str, np.ndarray]:
    from laion_clap.clap_module.tokenizer import tokenize

    ids = tokenize(refkit.CAPTIONS)  # CLIP BPE, 77 tokens
    embed = torch.nn.functional.normalize(clap.encode_text(ids, device="cpu"), dim=-1).numpy()
    return {"ids": ids.numpy(), "mask": (ids != 0).long().numpy(), "embed": embed}


TEXT_REFERENCES = {"roberta": _text_roberta, "bert": _text_bert, "transformer": _text_clip}


def _features(waves: list[np.ndarray], fusion: bool, audio_cfg: dict) -> list[dict]:
    from laion_clap.training.data import float32_to_int16, get_audio_features, int16_to_float32

    state = np.random.get_state()
    np.random.seed(0)
    feats = [
        get_audio_features({}, torch.from_numpy(int16_to_float32(float32_to_int16(w))).float(), 480000,
                           data_truncating="fusion" if fusion else "rand_trunc", data_filling="repeatpad",
                           audio_cfg=audio_cfg)  # fmt: skip
        for w in waves
    ]
    np.random.set_state(state)
    return feats


def takes_waveform(clap) -> bool:
    """laion's Cnn10/Cnn6 forward takes the waveform tensor, not the feature dict its own CLAP model passes it (so
    laion_clap cannot embed audio with them at all); their references call the branch as it works."""
    return type(clap.audio_branch).__name__ in ("Cnn6", "Cnn10")


def audio_embedding(clap, feats: list[dict]) -> torch.Tensor:
    if not takes_waveform(clap):
        return clap.get_audio_embedding(feats)
    embedding = clap.audio_branch(torch.stack([f["waveform"] for f in feats]))["embedding"]
    return torch.nn.functional.normalize(clap.audio_projection(embedding), dim=-1)


def build(name: str, index: int, out: Path) -> dict:
    import laion_clap

    amodel, tmodel, fusion = MODELS[name]
    torch.manual_seed(index)
    module = laion_clap.CLAP_Module(enable_fusion=fusion, amodel=amodel, tmodel=tmodel, device="cpu")
    clap, audio_cfg = module.model, module.model_cfg["audio_cfg"]
    changed = refkit.perturb(clap, seed=100 + index)
    scales = {"logit_scale_a": 11.0 + index, "logit_scale_t": 41.0 - index}
    refkit.set_logit_scales(clap, **scales)
    refkit.check_every_parameter_distinct(clap)
    calibration = list(refkit.calibration_batch(RATE, 4.0, count=3)) + refkit.long_calibration(RATE, LONG[0])
    calib_feats = _features(calibration if fusion else calibration[:3], fusion, audio_cfg)
    norms = refkit.calibrate_batch_norms(clap, lambda: audio_embedding(clap, calib_feats))
    clap.eval()

    arrays: dict[str, np.ndarray] = {"captions": np.array(refkit.CAPTIONS)}
    waves = {clip: refkit.signal(sec, RATE, seed) for clip, (sec, seed) in CLIPS.items()}
    long = refkit.signal(LONG[0], RATE, LONG[1])
    with torch.no_grad():
        for clip, wave in waves.items():
            arrays[f"wave_{clip}"] = wave
        if fusion:
            feats = _features([*waves.values(), long], fusion, audio_cfg)
            arrays["wave_long"] = long
            arrays["model_mel_fusion"] = torch.stack([f["mel_fusion"] for f in feats]).numpy()
            arrays["model_is_longer"] = torch.cat([f["longer"] for f in feats]).numpy()
            model_audio = clap.get_audio_embedding(feats).numpy()
            arrays["model_audio"] = model_audio
        for i, (clip, wave) in enumerate(waves.items()):
            if fusion and amodel.startswith("PANN"):  # laion's forward on LAION's flags (see the docstring)
                arrays[f"audio_{clip}"] = model_audio[i : i + 1]
            elif takes_waveform(clap):  # laion's numpy-API steps (int16 round trip, repeat-pad), then the branch
                arrays[f"audio_{clip}"] = audio_embedding(clap, _features([wave], False, audio_cfg)).numpy()
            else:
                arrays[f"audio_{clip}"] = module.get_audio_embedding_from_data([wave], use_tensor=False)
        if not fusion:  # torchlibrosa's log-mel of the repeat-padded clips, for the front-end check
            branch = clap.audio_branch
            padded = torch.stack([f["waveform"] for f in _features(list(waves.values()), False, audio_cfg)])
            arrays["model_logmel"] = branch.logmel_extractor(branch.spectrogram_extractor(padded)).numpy()
        text = TEXT_REFERENCES[tmodel](module, clap, out)
        arrays.update(text_input_ids=text["ids"], text_attention_mask=text["mask"], text_embed=text["embed"])
        arrays["logit_scale_a"] = clap.logit_scale_a.exp().numpy()
        arrays["logit_scale_t"] = clap.logit_scale_t.exp().numpy()
    state = {"module." + k: v for k, v in clap.state_dict().items()}
    torch.save({"epoch": 45, "name": name, "state_dict": state}, out / f"{name}.pt")  # LAION's training layout
    np.savez(out / f"{name}.npz", **arrays)
    return {"amodel": amodel, "tmodel": tmodel, "fusion": fusion, "perturbed_tensors": changed,
            "batch_norms_calibrated": norms, "logit_scales": scales}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    manifest: dict = {"models": {}}
    for name in args.models:
        start = time.time()
        manifest["models"][name] = build(name, list(MODELS).index(name), args.out)
        gc.collect()
        print(f"[reference] {name}: {time.time() - start:.1f} s", flush=True)
    (args.out / "laion_manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

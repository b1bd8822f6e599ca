"""Build Hugging Face ``ClapModel``s with random weights and write what the HF parity tests compare against.

Run with the REFERENCE environment's Python (transformers 4.57.6, laion_clap 1.1.7), never imported by clapkit:

    .venv-ref/bin/python tests/parity/reference_hf.py --out DIR

Writes, per model, a directory as a user would have it from the hub (``config.json``, weights,
``preprocessor_config.json``, tokenizer files) and ``<name>.npz`` with inputs and reference outputs:

- ``hf_clap_unfused``: ``ClapModel(ClapConfig())``, ``model.safetensors``, ``ClapFeatureExtractor(truncation=
  "rand_trunc")`` (so ``frequency_min`` is the extractor's default 0 Hz).
- ``hf_clap_fused``: ``enable_fusion=True``, ``pytorch_model.bin``, ``ClapFeatureExtractor(frequency_min=50)``
  (truncation "fusion", as the released fused checkpoint's processor uses 50 Hz).

Built offline (``offline.py``); every learned tensor is perturbed after HF's initialisation (which zeroes biases and
relative-position tables), batch norms calibrated on test signals, ``logit_scale_a``/``logit_scale_t`` set to distinct
values (``refkit.py``), so a wrong q/k/v split, a swapped norm or a dropped buffer cannot hide.

Second mode, used by ``tests/parity/test_hf.py`` on files clapkit exported:
``--check-hf DIR --inputs X.npz --result Y.npz`` loads DIR with ``ClapModel.from_pretrained`` and
``ClapFeatureExtractor.from_pretrained``; ``--check-laion FILE --amodel HTSAT-tiny [--fusion] --inputs X.npz --result
Y.npz`` loads FILE with ``laion_clap.CLAP_Module.load_ckpt`` (strict ``load_state_dict``).
"""

from __future__ import annotations

import argparse
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
CLIPS = {"a": (3.0, 21), "b": (10.0, 22)}  # name -> (seconds, seed)
LONG = (13.0, 23)
MODELS = {"hf_clap_unfused": False, "hf_clap_fused": True}
SCALES = {False: {"logit_scale_a": 19.0, "logit_scale_t": 33.0}, True: {"logit_scale_a": 27.0, "logit_scale_t": 12.5}}


def build(name: str, fusion: bool, out: Path) -> dict:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizerFast

    torch.manual_seed(7 + int(fusion))
    model = ClapModel(ClapConfig(audio_config={"enable_fusion": True}) if fusion else ClapConfig()).eval()
    tokenizer = RobertaTokenizerFast.from_pretrained("roberta-base")  # the stand-in vocabulary (offline.py)
    extractor = ClapFeatureExtractor(frequency_min=50, truncation="fusion") if fusion else ClapFeatureExtractor(
        truncation="rand_trunc"
    )
    changed = refkit.perturb(model, seed=31 + int(fusion))
    refkit.set_logit_scales(model, **SCALES[fusion])
    refkit.check_every_parameter_distinct(model)
    calibration = list(refkit.calibration_batch(RATE, 4.0, count=3)) + refkit.long_calibration(RATE, LONG[0])
    np.random.seed(1)
    calib = extractor(calibration if fusion else calibration[:3], sampling_rate=RATE, return_tensors="pt")
    norms = refkit.calibrate_batch_norms(model, lambda: model.get_audio_features(**calib))
    model.eval()
    directory = out / name
    model.save_pretrained(directory, safe_serialization=not fusion)
    extractor.save_pretrained(directory)
    tokenizer.save_pretrained(directory)

    arrays: dict[str, np.ndarray] = {"captions": np.array(refkit.CAPTIONS)}
    clips = {clip: refkit.signal(sec, RATE, seed) for clip, (sec, seed) in CLIPS.items()}
    with torch.no_grad():
        for clip, wave in clips.items():
            arrays[f"wave_{clip}"] = wave
            feats = extractor(wave, sampling_rate=RATE, return_tensors="pt")  # one clip: HF's own call
            arrays[f"features_{clip}"] = feats["input_features"].numpy()
            arrays[f"hf_is_longer_{clip}"] = feats["is_longer"].numpy().reshape(-1)
            arrays[f"audio_hf_quirk_{clip}"] = model.get_audio_features(**feats).numpy()
            # LAION's rule for a clip no longer than 10 s: is_longer False (HF marks a random one True, see test_hf)
            laion_rule = torch.zeros_like(feats["is_longer"])
            arrays[f"audio_{clip}"] = model.get_audio_features(feats["input_features"], laion_rule).numpy()
        long = refkit.signal(LONG[0], RATE, LONG[1])
        arrays["wave_long"] = long
        if fusion:
            np.random.seed(0)
            feats = extractor(long, sampling_rate=RATE, return_tensors="pt")
            mel = extractor._np_extract_fbank_features(long.astype(np.float64), extractor.mel_filters)
            np.random.seed(0)  # replay the extractor's three np.random.choice calls to learn its chunk starts
            chunk = 480000 // 480 + 1
            parts = np.array_split(list(range(0, mel.shape[0] - chunk + 1)), 3)
            arrays["long_chunk_starts"] = np.array([np.random.choice(p) for p in parts])
            arrays["long_full_mel"] = mel.astype(np.float32)
            arrays["features_long"] = feats["input_features"].numpy()
            arrays["is_longer_long"] = feats["is_longer"].numpy().reshape(-1)
            arrays["audio_long"] = model.get_audio_features(**feats).numpy()
        enc = tokenizer(refkit.CAPTIONS, padding=True, return_tensors="pt")
        arrays["text_input_ids"] = enc["input_ids"].numpy()
        arrays["text_attention_mask"] = enc["attention_mask"].numpy()
        arrays["text_embed"] = model.get_text_features(enc["input_ids"], enc["attention_mask"]).numpy()
        arrays["logit_scale_a"] = model.logit_scale_a.exp().numpy()
        arrays["logit_scale_t"] = model.logit_scale_t.exp().numpy()
    np.savez(out / f"{name}.npz", **arrays)
    return {"fusion": fusion, "frequency_min": extractor.frequency_min, "truncation": extractor.truncation,
            "perturbed_tensors": changed, "batch_norms_calibrated": norms}  # fmt: skip


def check_hf(directory: Path, inputs: dict, result: dict) -> None:
    """Load a clapkit-exported HF directory with transformers and embed the given inputs."""
    from transformers import ClapFeatureExtractor, ClapModel

    model, info = ClapModel.from_pretrained(directory, output_loading_info=True)  # a directory: the real one
    model.eval()
    extractor = ClapFeatureExtractor.from_pretrained(directory)
    result["hf_loading_info"] = np.array(json.dumps({k: sorted(map(str, v)) for k, v in info.items()}))
    result["hf_extractor"] = np.array(json.dumps(extractor.to_dict(), default=str))
    with torch.no_grad():
        features = torch.from_numpy(inputs["features"])
        is_longer = torch.from_numpy(inputs["is_longer"]).reshape(-1, 1)
        result["hf_audio_model_level"] = model.get_audio_features(features, is_longer).numpy()
        feats = extractor(inputs["wave"], sampling_rate=extractor.sampling_rate, return_tensors="pt")
        result["hf_features_end_to_end"] = feats["input_features"].numpy()
        no_random_longer = torch.zeros_like(feats["is_longer"])  # one short clip: LAION's rule (see test_hf)
        result["hf_audio_end_to_end"] = model.get_audio_features(feats["input_features"], no_random_longer).numpy()
        ids, mask = torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])
        result["hf_text"] = model.get_text_features(ids, mask).numpy()
        result["hf_logit_scale_a"] = model.logit_scale_a.exp().numpy()


def check_laion(path: Path, amodel: str, fusion: bool, inputs: dict, result: dict) -> None:
    """Load a clapkit-exported LAION checkpoint with laion_clap (strictly) and embed the given inputs."""
    import laion_clap

    torch.manual_seed(0)
    module = laion_clap.CLAP_Module(enable_fusion=fusion, amodel=amodel, tmodel="roberta", device="cpu")
    built = {k: v.clone() for k, v in module.model.state_dict().items() if "_extractor." in k}
    module.load_ckpt(str(path), verbose=False)  # load_state_dict(strict=True) after laion's own key handling
    loaded = module.model.state_dict()
    result["laion_extractor_max_diff"] = np.array(max(float((loaded[k] - v).abs().max()) for k, v in built.items()))
    module.model.eval()
    with torch.no_grad():
        result["laion_audio_end_to_end"] = module.get_audio_embedding_from_data([inputs["wave"]], use_tensor=False)
        ids, mask = torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])
        result["laion_text"] = module.model.get_text_embedding({"input_ids": ids, "attention_mask": mask}).numpy()
        result["laion_logit_scale_a"] = module.model.logit_scale_a.exp().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--check-hf", type=Path)
    parser.add_argument("--check-laion", type=Path)
    parser.add_argument("--amodel", default="HTSAT-tiny")
    parser.add_argument("--fusion", action="store_true")
    parser.add_argument("--inputs", type=Path)
    parser.add_argument("--result", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # runs beside the LAION builder
    if args.check_hf or args.check_laion:
        inputs, result = dict(np.load(args.inputs)), {}
        if args.check_hf:
            check_hf(args.check_hf, inputs, result)
        if args.check_laion:
            check_laion(args.check_laion, args.amodel, args.fusion, inputs, result)
        np.savez(args.result, **result)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"models": {}}
    for name, fusion in MODELS.items():
        start = time.time()
        manifest["models"][name] = build(name, fusion, args.out)
        print(f"[reference] {name}: {time.time() - start:.1f} s", flush=True)
    (args.out / "hf_manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

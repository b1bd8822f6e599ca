"""Build MS-CLAP 2022 and 2023 references (msclap 1.3.4): what ``tests/parity/test_msclap.py`` compares against.

Run with the REFERENCE environment's Python (``.venv-ref``), never by clapkit:

    .venv-ref/bin/python tests/parity/reference_msclap.py --out DIR [--versions 2022 2023]

msclap's ``CLAPWrapper`` is built offline with random weights (``offline.msclap_wrapper``), every learned tensor
perturbed, the audio encoder's batch norms calibrated on test signals and ``logit_scale`` set to a non-default value
(``refkit.py``). Written per version: ``msclap_<version>.pth`` (``{'model': state_dict}``, msclap's own format),
``msclap_<version>.npz`` (inputs and msclap's outputs) and ``msclap_tokenizers/<version>/`` (msclap's tokenizer as
``save_pretrained`` writes it: BERT's real vocabulary, a stand-in GPT-2 one).

Audio end to end: msclap's file API (``get_audio_embeddings``: read, fit to the version's duration, front end, model)
on a short clip (repeated to the duration) and one of exactly the duration. Model level: whole waveforms into
``_get_audio_embeddings`` (2023: 8 s and 10 s are longer than its 1024-frame image, so msclap runs 689-frame crops).
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
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

RATE = 44100
# seconds: "short" is repeated to the duration, "exact" is one duration, "long*" go into the model whole
CLIPS = {"2022": {"short": 2.3, "exact": 5.0, "long": 7.0}, "2023": {"short": 2.3, "exact": 7.0, "long8": 8.0,
                                                                     "long": 10.0}}  # fmt: skip
LOGIT_SCALE = {"2022": 17.5, "2023": 29.0}


def normalized(x: torch.Tensor) -> np.ndarray:
    return F.normalize(x.detach().float(), dim=-1).numpy()


def build(version: str, out: Path) -> dict:
    torch.manual_seed(int(version))
    wrapper = offline.msclap_wrapper(version)
    clap = wrapper.clap
    assert wrapper.args.sampling_rate == RATE
    changed = refkit.perturb(clap, seed=int(version))
    refkit.set_logit_scales(clap, logit_scale=LOGIT_SCALE[version])
    refkit.check_every_parameter_distinct(clap)
    duration = float(wrapper.args.duration)
    calibration = torch.from_numpy(refkit.calibration_batch(RATE, duration, count=4))
    norms = refkit.calibrate_batch_norms(clap.audio_encoder, lambda: clap.audio_encoder(calibration))
    clap.eval()

    arrays: dict[str, np.ndarray] = {"captions": np.array(refkit.CAPTIONS)}
    waves = {key: refkit.signal(sec, RATE, seed=10 + i) for i, (key, sec) in enumerate(CLIPS[version].items())}
    with torch.no_grad():
        for key, wave in waves.items():
            arrays[f"wave_{key}"] = wave
            if key in ("short", "exact"):  # the public API end to end: file -> fit to `duration` -> model
                path = out / f"msclap_{version}_{key}.wav"
                sf.write(str(path), wave, RATE, subtype="FLOAT")
                arrays[f"audio_{key}"] = normalized(wrapper.get_audio_embeddings([str(path)], resample=True))
                path.unlink()
            arrays[f"model_audio_{key}"] = normalized(wrapper._get_audio_embeddings(torch.from_numpy(wave)[None, None]))
        owner = clap.audio_encoder.base
        owner = getattr(owner, "htsat", owner)  # 2023: the torchlibrosa front end lives in the HTSAT module
        exact = torch.from_numpy(waves["exact"])[None]
        arrays["logmel_exact"] = owner.logmel_extractor(owner.spectrogram_extractor(exact)).numpy()  # (1, 1, T, 64)
        tokens = wrapper.preprocess_text(refkit.CAPTIONS)
        arrays["text_input_ids"] = tokens["input_ids"].numpy()
        arrays["text_attention_mask"] = tokens["attention_mask"].numpy()
        arrays["text_embed"] = normalized(wrapper.get_text_embeddings(refkit.CAPTIONS))
        arrays["logit_scale"] = clap.logit_scale.exp().numpy()
    torch.save({"model": clap.state_dict()}, out / f"msclap_{version}.pth")
    wrapper.tokenizer.save_pretrained(str(out / "msclap_tokenizers" / version))
    np.savez(out / f"msclap_{version}.npz", **arrays)
    return {"text_model": wrapper.args.text_model, "audio_encoder": wrapper.args.audioenc_name,
            "duration": duration, "perturbed_tensors": changed, "batch_norms_calibrated": norms}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--versions", nargs="*", default=list(CLIPS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # runs beside the LAION builder
    manifest: dict = {"versions": {}}
    for version in args.versions:
        start = time.time()
        manifest["versions"][version] = build(version, args.out)
        print(f"[reference] msclap {version}: {time.time() - start:.1f} s", flush=True)
    (args.out / "msclap_manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

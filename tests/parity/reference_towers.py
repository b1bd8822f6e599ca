"""Reference models for the BART and T5 text towers, with perturbed weights (run in the REFERENCE environment).

    .venv-ref/bin/python tests/parity/reference_towers.py --out .cache/parity

- ``laion_htsat_tiny_bart``: laion_clap 1.1.7 ``create_model("HTSAT-tiny", "bart")``, i.e. ``CLAP_Module(tmodel=
  "bart")``'s model. laion_clap calls ``BartModel.from_pretrained("facebook/bart-base")``; offline (``offline.py``),
  that call builds a small ``BartConfig`` (768-d, which laion_clap's ``Linear(768, 512)`` projection requires, 2
  encoder layers).
- ``reclap_htsat_tiny_t5_fusion``: ReCLAP's model as its facts describe it, built here: laion_clap's ``CLAP`` (HTSAT
  with feature fusion ``aff_2d``, repeat-pad) whose text branch is transformers' ``T5EncoderModel`` (small Flan-T5-like
  geometry: 2 blocks, d_model 64, 3 heads of 24, gated-GELU d_ff 96), text embedding = mean of ``last_hidden_state``
  over the 77 positions including pads, projection ``Linear(64, 512), ReLU, Linear(512, 512)``. Saved as LAION's
  checkpoint layout (ReCLAP's): ``text_branch.*`` holds the T5 encoder's keys.

Every learned tensor is perturbed (norm gains around 1, not 1; the two logit scales differ) and every batch norm is
calibrated on the test audio. Outputs: ``<name>.pt`` + ``<name>.npz`` (token ids, text and audio embeddings).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import offline  # noqa: E402
import torch  # noqa: E402

BART = {"vocab_size": 500, "d_model": 768, "encoder_layers": 2, "decoder_layers": 1, "encoder_attention_heads": 12,
        "decoder_attention_heads": 12, "encoder_ffn_dim": 256, "decoder_ffn_dim": 256, "max_position_embeddings": 80,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2}
T5 = {"vocab_size": 300, "d_model": 64, "d_kv": 24, "num_heads": 3, "d_ff": 96, "num_layers": 2,
      "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
      "layer_norm_epsilon": 1e-6, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}
CONTEXT = 77
CLIPS = ("clip_10s", "clip_4s", "clip_7_3s")  # all at most 10 s: fusion input without random chunks


def waveforms(sample_rate: int) -> dict[str, np.ndarray]:
    """This builder's clips: noise, a modulated tone and clicks every 0.25 s (deterministic, seed 0)."""
    rng = np.random.default_rng(0)

    def clip(seconds: float, freq: float) -> np.ndarray:
        n = int(round(seconds * sample_rate))
        t = np.arange(n) / sample_rate
        x = 0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) / 2
        x[:: sample_rate // 4] += 0.8
        return np.clip(x, -1, 1).astype(np.float32)

    return {"clip_10s": clip(10.0, 440.0), "clip_4s": clip(4.0, 1200.0), "clip_7_3s": clip(7.3, 90.0)}


def save_laion_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """As LAION's (and ReCLAP's) training loop saves: {'epoch', 'name', 'state_dict' with DDP's 'module.' prefix}."""
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 45, "name": path.stem, "state_dict": state}, path)


def register_small_towers() -> None:
    """laion_clap builds its text towers with ``from_pretrained``; offline (``offline.py``), this process gets small
    ones: BART with ``BART`` (768-d, which laion_clap's ``Linear(768, 512)`` projection requires) and a tiny RoBERTa
    (laion_clap's default tower, replaced by T5 right after it is built)."""

    def bart():
        from transformers import BartConfig

        return BartConfig(**BART)

    def roberta():
        from transformers import RobertaConfig

        return RobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32)

    offline.register_model("facebook/bart-base", bart)
    offline.register_model("roberta-base", roberta)


def token_ids(vocab: int, bos: int | None, eos: int, pad: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four captions of 5..30 tokens, padded to 77 with ``pad`` (as the references' tokenizers pad)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.full((4, CONTEXT), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, length in enumerate((5, 12, 30, 9)):
        body = torch.randint(3, vocab, (length,), generator=generator).tolist()
        tokens = ([bos] if bos is not None else []) + body + [eos]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int) -> None:
    """Every learned tensor moves: norm gains (LayerNorm, T5's RMSNorm ``layer_norm``) to 1 + N(0, 0.1), other
    tensors by N(0, 0.02); the logit scales to distinct values. The torchlibrosa front end (STFT kernels, mel matrix:
    fixed, not learned, and regenerated by clapkit) stays."""
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in model.named_parameters():
        noise = torch.randn(parameter.shape, generator=generator)
        if "spectrogram_extractor." in name or "logmel_extractor." in name:
            continue
        if name.startswith("logit_scale"):
            parameter.fill_(math.log(1 / 0.07) + (0.3 if name.endswith("_a") else -0.4))
        elif "norm" in name.rsplit(".", 2)[-2] and name.endswith("weight") and parameter.ndim == 1:
            parameter.copy_(1 + 0.1 * noise)
        else:
            parameter.add_(0.02 * noise)


@torch.no_grad()
def calibrate_batchnorms(clap, feats: list[dict]) -> None:
    """Running statistics of every batch norm from the test audio (cumulative average over one pass)."""
    norms = [m for m in clap.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    clap.train()
    input_dict = {k: torch.stack([f[k] for f in feats]) for k in feats[0]}
    clap.encode_audio(input_dict, device="cpu")
    clap.eval()
    for norm in norms:
        norm.momentum = 0.1
    assert all(not torch.allclose(n.running_var, torch.ones_like(n.running_var)) for n in norms)


def audio_features(clips: dict[str, np.ndarray], audio_cfg: dict, fusion: bool) -> list[dict]:
    """laion_clap's own input pipeline, with the int16 round trip its public API applies."""
    from laion_clap.training.data import float32_to_int16, get_audio_features, int16_to_float32

    out = []
    for key in CLIPS:
        wave = torch.from_numpy(int16_to_float32(float32_to_int16(clips[key])))
        out.append(get_audio_features({}, wave, 480000, data_truncating="fusion" if fusion else "rand_trunc",
                                      data_filling="repeatpad", audio_cfg=audio_cfg))
    return out


def t5_encode_text(self, text, device):
    """ReCLAP's text path: T5 encoder, mean over the sequence axis (pads included), then the projection MLP."""
    hidden = self.text_branch(input_ids=text["input_ids"].to(device),
                              attention_mask=text["attention_mask"].to(device))["last_hidden_state"]
    return self.text_projection(torch.mean(hidden, dim=1))


def build(name: str, out: Path) -> dict:
    from laion_clap.clap_module import create_model

    fusion = name.endswith("fusion")
    torch.manual_seed(0)
    kwargs = {"fusion_type": "aff_2d"} if fusion else {}
    tmodel = "bart" if "bart" in name else "roberta"
    clap, cfg = create_model("HTSAT-tiny", tmodel, precision="fp32", device="cpu", enable_fusion=fusion, **kwargs)
    if tmodel == "bart":
        ids, mask = token_ids(BART["vocab_size"], 0, 2, 1, seed=1)
    else:
        from transformers import T5Config, T5EncoderModel

        clap.text_branch = T5EncoderModel(T5Config(**T5))
        clap.text_projection = torch.nn.Sequential(torch.nn.Linear(T5["d_model"], 512), torch.nn.ReLU(),
                                                   torch.nn.Linear(512, 512))
        clap.text_branch_type = "t5"
        clap.encode_text = types.MethodType(t5_encode_text, clap)
        ids, mask = token_ids(T5["vocab_size"], None, 1, 0, seed=2)
    perturb(clap, seed=3)
    clips = waveforms(48000)
    feats = audio_features(clips, cfg["audio_cfg"], fusion)
    calibrate_batchnorms(clap, feats)
    arrays = {"text_input_ids": ids.numpy(), "text_attention_mask": mask.numpy()}
    with torch.no_grad():
        arrays["text_embed"] = clap.get_text_embedding({"input_ids": ids, "attention_mask": mask}).numpy()
        audio = clap.get_audio_embedding(feats).numpy()  # one batch: each row depends on its own clip only
        for row, key in enumerate(CLIPS):
            arrays[f"wave_{key}"] = clips[key]
            arrays[f"audio_{key}"] = audio[row : row + 1]
        arrays["logit_scale_a"] = clap.logit_scale_a.exp().numpy()
        arrays["logit_scale_t"] = clap.logit_scale_t.exp().numpy()
    save_laion_checkpoint(clap, out / f"{name}.pt")
    np.savez(out / f"{name}.npz", **arrays)
    return {"text": BART if tmodel == "bart" else T5, "fusion": fusion}


MODELS = ("laion_htsat_tiny_bart", "reclap_htsat_tiny_t5_fusion")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    register_small_towers()
    offline.install()
    torch.set_num_threads(2)
    manifest = {"models": {}}
    for name in args.models:
        start = time.time()
        manifest["models"][name] = build(name, args.out)
        print(f"[reference] {name}: {time.time() - start:.1f} s", flush=True)
    (args.out / "towers_manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

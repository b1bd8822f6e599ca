"""Worker process for ``benchmarks/compare.py``: one side of the side-by-side benchmark, driven over stdin/stdout.

    <reference python> benchmarks/compare_worker.py --side reference --workdir DIR   # laion_clap + transformers
    <clapkit python>   benchmarks/compare_worker.py --side clapkit --workdir DIR     # clapkit fp32
    <clapkit python>   benchmarks/compare_worker.py --side fast --workdir DIR        # clapkit.fast (--fast-mode)

The driver writes one JSON command per line and reads one JSON answer per line. The reference side builds
LAION HTSAT-tiny + RoBERTa and transformers' ``ClapModel(ClapConfig())`` with seed-0 random weights (through
``tests/parity/offline.py``) and saves them to ``DIR`` (a LAION training checkpoint, a ``save_pretrained`` directory);
the clapkit sides load exactly those files with ``clapkit.load``. Every side builds the same inputs from fixed seeds, so
the tasks below are the same work on both sides:

  audio_b1, audio_b8   10 s clips (48 kHz numpy) through the public waveform API: laion_clap
                       ``get_audio_embedding_from_data`` (int16 round trip, rand_trunc/repeatpad, torchlibrosa mel)
                       vs ``ClapModel.embed_audio`` (same steps, clapkit's front end)
  text_b32             32 short captions, tokenisation included: transformers (tokenizer, pad to longest,
                       ``ClapModel.get_text_features``) vs ``ClapModel.embed_text`` of the same HF directory
  text_laion_b32       32 captions through laion_clap's ``get_text_embedding`` (pads to 77) vs clapkit's
  train_b8             one LAION training step, batch 8: forward (waveform front end in train mode, SpecAugment,
                       dropout), contrastive loss, backward, AdamW step (clapkit: fused=True); text pre-tokenised
                       (laion: pad to 77, clapkit: to the longest caption)
  train_bf16_b8        clapkit only, compared with the reference's fp32 train_b8: the same step with the forward
                       under CPU bf16 autocast (the training loop's opt-in ``precision: bf16``), loss in fp32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE, CLIP = 48000, 480000


def memory_mib() -> dict:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            key, value = line.split(":")
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def waveforms(batch: int, seed: int) -> np.ndarray:
    """(batch, 10 s) float32: noise plus a tone, different per clip, identical on every side."""
    rng = np.random.default_rng(seed)
    t = np.arange(CLIP) / SAMPLE_RATE
    tones = np.sin(2 * np.pi * rng.uniform(100, 4000, (batch, 1)) * t)
    return (0.05 * rng.standard_normal((batch, CLIP)) + 0.3 * tones).astype(np.float32)


def captions(count: int, seed: int = 0) -> list[str]:
    """Realistic short captions (6-14 words), deterministic."""
    import random

    subjects = ["A dog", "A small child", "Heavy rain", "An old car engine", "A church bell", "A crowd of people",
                "Birds", "A woman", "A train", "Thunder", "A man", "Water", "A violin", "Footsteps", "A baby"]
    verbs = ["barks repeatedly", "laughs loudly", "falls steadily", "idles and then revs", "rings twice",
             "cheers and claps", "chirp happily", "speaks softly", "passes by quickly", "rumbles", "whistles",
             "flows over rocks", "plays a slow melody", "echo on a wooden floor", "cries"]
    places = ["in the distance", "on a busy street", "in a small room", "near a river", "in the forest at night",
              "during a storm", "in a large hall", "outside a house", "on a metal roof", "in a kitchen"]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(places)}"
        if rng.random() < 0.35:
            text += f" while {rng.choice(subjects).lower()} {rng.choice(verbs)}"
        out.append(text + ".")
    return out


class Reference:
    """laion_clap HTSAT-tiny + RoBERTa and transformers ClapModel, seed-0 random weights, saved for clapkit."""

    def __init__(self, workdir: Path):
        sys.path.insert(0, str(ROOT / "tests" / "parity"))
        import offline  # the parity references' offline stand-ins (no hub, stand-in RoBERTa vocabulary)

        offline.install()
        import laion_clap
        import torch
        from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizerFast

        self.torch = torch
        torch.manual_seed(0)
        self.module = laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-tiny", tmodel="roberta", device="cpu")
        self.module.model.eval()
        torch.manual_seed(0)
        self.hf_model = ClapModel(ClapConfig()).eval()
        self.hf_tokenizer = RobertaTokenizerFast.from_pretrained("roberta-base")
        state = {"module." + k: v for k, v in self.module.model.state_dict().items()}
        torch.save({"epoch": 1, "name": "compare", "state_dict": state}, workdir / "laion_htsat_tiny.pt")
        hf_dir = workdir / "hf_clap"
        self.hf_model.save_pretrained(hf_dir)
        ClapFeatureExtractor().save_pretrained(hf_dir)
        self.hf_tokenizer.save_pretrained(hf_dir)
        (workdir / "READY").touch()
        self.train = None

    def embed(self, task: str, inputs):
        if task.startswith("audio"):
            return self.module.get_audio_embedding_from_data(inputs, use_tensor=False)
        if task == "text_b32":
            tokens = self.hf_tokenizer(inputs, padding=True, return_tensors="pt")
            features = self.hf_model.get_text_features(tokens["input_ids"], tokens["attention_mask"])
            return features.detach().numpy()
        return self.module.get_text_embedding(inputs, use_tensor=True).numpy()

    def train_step(self):
        torch = self.torch
        if self.train is None:
            from laion_clap.clap_module.loss import ClipLoss

            clap = self.module.model
            audio = {"waveform": torch.from_numpy(waveforms(8, 101)),
                     "longer": torch.zeros(8, 1, dtype=torch.bool)}
            text = dict(self.module.tokenizer(captions(8, 7)))
            loss_fn = ClipLoss(mlp_loss=False)
            optimizer = torch.optim.AdamW([p for p in clap.parameters() if p.requires_grad], lr=1e-5)

            def step():
                clap.train()
                optimizer.zero_grad(set_to_none=True)
                a, t, a_mlp, t_mlp, scale_a, scale_t = clap(dict(audio), dict(text), device="cpu")
                loss_fn(a, t, scale_a, scale_t, a_mlp, t_mlp).backward()
                optimizer.step()
                clap.eval()

            self.train = step
        with torch.enable_grad():
            self.train()


class Clapkit:
    """The same checkpoints loaded with clapkit (``fast``: audio tower accelerated with ``clapkit.fast``)."""

    def __init__(self, workdir: Path, fast: str | None):
        import torch

        import clapkit

        self.torch = torch
        hf_dir = workdir / "hf_clap"
        deadline = time.monotonic() + 900
        while not (workdir / "READY").exists():  # the reference worker writes the checkpoints
            if time.monotonic() > deadline:
                raise RuntimeError(f"no reference checkpoints appeared in {workdir}")
            time.sleep(0.2)
        self.load_laion = lambda: clapkit.load(workdir / "laion_htsat_tiny.pt", tokenizer=hf_dir)
        self.laion = self.load_laion()
        self.hf = None if fast else clapkit.load(hf_dir)
        if fast:  # only the accelerated copy stays alive (peak RSS of the fast path)
            from clapkit.fast import accelerate

            self.laion = accelerate(self.laion, fast)
        self.fast = fast
        self.train = None

    def embed(self, task: str, inputs):
        if task.startswith("audio"):
            return self.laion.embed_audio(inputs, sample_rate=SAMPLE_RATE, batch_size=len(inputs))
        model = self.hf if task == "text_b32" else self.laion
        return model.embed_text(inputs, batch_size=len(inputs))

    def train_step(self, bf16: bool = False):
        torch = self.torch
        if self.train is None:
            import contextlib

            from clapkit.audio.fusion import prepare_batch
            from clapkit.train.loss import ContrastiveLoss, clamp_logit_scale_
            from clapkit.train.modeling import parameter_groups

            module, config = self.laion.module, self.laion.config
            wave = list(waveforms(8, 101))
            tokens = self.laion.tokenize(captions(8, 7))
            loss_fn = ContrastiveLoss()
            # fused AdamW: one kernel per parameter group (the reference's default foreach AdamW takes ~0.6 s here)
            optimizer = torch.optim.AdamW(parameter_groups(module, 0.0), lr=1e-5, fused=True)
            rng = np.random.default_rng(0)

            def step(bf16: bool):
                module.train()
                optimizer.zero_grad(set_to_none=True)
                batch = prepare_batch(wave, config.frontend, fusion=False, train=True, generator=rng)
                autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
                with autocast:
                    outputs = module(batch.features, batch.is_longer, tokens["input_ids"], tokens["attention_mask"])
                a, t, scale = (o.float() for o in outputs[:3])
                loss_fn(a, t, scale).backward()
                optimizer.step()
                clamp_logit_scale_(module)
                module.eval()

            self.train = step
        with torch.enable_grad():
            self.train(bf16)


def task_inputs(task: str):
    if task == "audio_b1":
        return waveforms(1, 11)
    if task == "audio_b8":
        return waveforms(8, 12)
    return captions(32, 3)


def run(side, task: str, inputs) -> dict:
    torch = side.torch
    cpu, wall = time.process_time(), time.perf_counter()
    if task == "train_b8":
        side.train_step()
    elif task == "train_bf16_b8":
        side.train_step(bf16=True)
    else:
        with torch.inference_mode():
            side.embed(task, inputs)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=("reference", "clapkit", "fast"), required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--fast-mode", default="auto", help="clapkit.fast backend of the fast side")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    answer = os.fdopen(os.dup(1), "w")  # answers only; anything the libraries print goes to stderr
    os.dup2(2, 1)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    side = Reference(args.workdir) if args.side == "reference" else Clapkit(
        args.workdir, args.fast_mode if args.side == "fast" else None)
    inputs = {task: task_inputs(task) for task in ("audio_b1", "audio_b8", "text_b32", "text_laion_b32")}
    answer.write(json.dumps({"ready": True, "build_s": time.perf_counter() - started, "mem": memory_mib(),
                             "torch": torch.__version__, "threads": torch.get_num_threads(),
                             "acceleration": getattr(getattr(side, "laion", None), "acceleration", None)}) + "\n")
    answer.flush()
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            break
        if op == "run":
            out = run(side, command["task"], inputs.get(command["task"]))
        elif op == "embed":
            with torch.inference_mode():
                out = {"embedding": np.asarray(side.embed(command["task"], inputs[command["task"]])).tolist()}
        elif op == "mem":
            out = memory_mib()
        elif op == "profile":
            from compare_profile import profile_clapkit

            out = profile_clapkit(side, inputs)
        elif op == "zeroshot":
            from compare_profile import zeroshot_check

            out = zeroshot_check(side, Path(command["corpus"]), command.get("limit"))
        else:
            out = {"error": f"unknown op {op!r}"}
        answer.write(json.dumps(out) + "\n")
        answer.flush()


if __name__ == "__main__":
    main()

"""Speed of one CLAP training step on this machine: forward + backward + AdamW step, random weights.

    python benchmarks/train_step.py                              # LAION HTSAT-tiny + RoBERTa, batch 8
    python benchmarks/train_step.py --model clapkit-htsat-small-minilm --batch-size 32 --freeze-text

Audio: random waveforms of the model's clip length (10 s for LAION) through the training front end (timed apart); text:
random token ids of 24 tokens. The step is the loop's: ContrastiveLoss, backward, AdamW, logit-scale clamp.
Reports the median of ``--repeats`` timed steps after ``--warmup`` untimed ones.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from clapkit.audio.fusion import prepare_batch
from clapkit.models.clap import ClapModule
from clapkit.registry import get_config
from clapkit.train.loss import ContrastiveLoss, clamp_logit_scale_
from clapkit.train.modeling import freeze_towers, parameter_groups, set_train_mode


def measure(model_name: str, batch_size: int, repeats: int, warmup: int, freeze_text: bool, tokens: int) -> dict:
    config = get_config(model_name)
    torch.manual_seed(0)
    module = ClapModule(config)
    freeze_towers(module, False, freeze_text)
    set_train_mode(module, False, freeze_text)
    optimizer = torch.optim.AdamW(parameter_groups(module, 0.01), lr=1e-4)
    loss_fn = ContrastiveLoss()
    rng = np.random.default_rng(0)
    frontend = config.frontend
    waveforms = [(0.1 * rng.standard_normal(frontend.clip_samples)).astype(np.float32) for _ in range(batch_size)]
    vocab = int(config.text.hf_config.get("vocab_size", 30522))
    input_ids = torch.randint(5, vocab, (batch_size, tokens), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones_like(input_ids)

    frontend_times, step_times = [], []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        audio = prepare_batch(waveforms, frontend, fusion=config.audio.enable_fusion, train=True, generator=rng)
        middle = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        audio_embeddings, text_embeddings, scale, _ = module(audio.features, audio.is_longer, input_ids,
                                                             attention_mask)
        loss_fn(audio_embeddings, text_embeddings, scale).backward()
        optimizer.step()
        clamp_logit_scale_(module)
        end = time.perf_counter()
        if i >= warmup:
            frontend_times.append(middle - start)
            step_times.append(end - middle)
    step = statistics.median(step_times)
    return {"model": model_name, "batch": batch_size, "threads": torch.get_num_threads(),
            "trainable_M": sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6,
            "frontend_s": statistics.median(frontend_times), "step_s": step, "step_min_s": min(step_times),
            "samples_per_s": batch_size / step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="registry name(s) (default: laion-htsat-tiny)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--freeze-text", action="store_true", help="freeze the text tower (no text backward)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(name, args.batch_size, args.repeats, args.warmup, args.freeze_text, args.tokens)
            for name in args.model or ["laion-htsat-tiny"]]
    header = (f"{'model':30s} {'batch':>5s} {'threads':>7s} {'trainable M':>11s} {'front end s':>11s} "
              f"{'step s (median)':>15s} {'step s (min)':>12s} {'samples/s':>9s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:30s} {r['batch']:5d} {r['threads']:7d} {r['trainable_M']:11.1f} {r['frontend_s']:11.3f} "
              f"{r['step_s']:15.3f} {r['step_min_s']:12.3f} {r['samples_per_s']:9.2f}")
    print(f"\nstep = forward + contrastive loss + backward + AdamW + clamp, median of {args.repeats} after "
          f"{args.warmup} warm-up; front end = waveform -> log-mel (training crops), timed apart")


if __name__ == "__main__":
    main()

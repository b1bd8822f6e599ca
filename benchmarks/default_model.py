"""The default model's own speed on this CPU: clips/s and FLOPs per clip against the machine's fp32 limit.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/default_model.py            # ~2 min on 2 cores
    python benchmarks/default_model.py --rounds 2                         # quicker

``clapkit.load("default")`` (aiSFX CNN8 audio tower, 5 s clips at 44.1 kHz, MiniLM text tower). Every round runs
each variant once, one after the other (interleaved, so slow spells of a shared machine hit all alike):

  audio tower, plain       the module-by-module path (conv, batch norm, ReLU; NCHW), what autograd runs
  audio tower, inference   what ``embed_audio`` runs without autograd: channels-last, batch norms folded
  embed_audio              waveform in: peak normalisation, STFT, mel, log, tower, head, L2
  fast (BACKEND)           ``clapkit.fast.accelerate(model, BACKEND)``'s audio path (``--fast``, default: ``auto``, what
                           it picks here), tower + head from features / waveform in
  text b32                 ``embed_text`` of 32 captions (clapkit's BERT encoder) vs transformers' ``BertModel``
                           with the same weights (tokenisation included on both sides)

FLOPs are counted by ``torch.utils.flop_counter`` on one clip (convolutions and matmuls; the front end's FFT is not
counted). The limit is FLOPs / the fp32 matmul peak: the best 2048^3 sgemm measured here in the same run (or
``--peak-gflops``), best of every round; the bf16 matmul peak (same size) is printed too, the bf16 backend's ceiling.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch


def sgemm_gflops(threads: int, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(2048, 2048).to(dtype), torch.randn(2048, 2048).to(dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * 2048**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_tower(tower, features: torch.Tensor) -> torch.Tensor:
    """SfxCNN's module-by-module path (what runs under autograd), here without autograd."""
    x, last = features, tower.block_names[-1]
    for name in tower.block_names:
        x = getattr(tower, name)(x, pool=name != last, max_pool=True)
    return x.mean(dim=3).amax(dim=2)


def flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-gflops", type=float, help="fp32 matmul peak (default: measured in this run)")
    parser.add_argument("--fast", nargs="*", default=["auto"], help="clapkit.fast backends (default: auto)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import clapkit
    from clapkit.audio.fusion import prepare_batch

    model = clapkit.load("default")
    tower, rate, clip = model.module.audio_tower, model.sample_rate, model.config.frontend.clip_samples
    rng = np.random.default_rng(0)
    t = np.arange(clip) / rate
    waves = [(0.05 * rng.standard_normal(clip) + 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t))
             .astype(np.float32) for _ in range(8)]
    features = {b: prepare_batch(waves[:b], model.config.frontend, fusion=False, train=False).features for b in (1, 8)}
    from transformers import BertModel, BertTokenizerFast

    from clapkit.tokenizers import _find_local

    reference_text = BertModel(_bert_config(model), add_pooling_layer=True).eval()
    reference_text.load_state_dict(model.module.text_tower.model.state_dict(), strict=True)
    reference_tokenizer = BertTokenizerFast(vocab_file=str(_find_local("bert")), do_lower_case=True)
    captions = [f"a recording of {w} in a {p}" for w in ("rain", "a dog barking", "a violin", "traffic", "birds",
                                                         "a door slamming", "footsteps", "wind")
                for p in ("small room", "large hall", "forest", "street")]

    def transformers_text():
        enc = reference_tokenizer(captions, padding="longest", truncation=True, max_length=77, return_tensors="pt")
        hidden = reference_text(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                token_type_ids=torch.zeros_like(enc["input_ids"])).last_hidden_state
        mask = enc["attention_mask"][..., None].float()
        return (hidden * mask).sum(1) / mask.sum(1)

    with torch.inference_mode():
        per_clip = flops(lambda: tower(features[1]))
        whole = flops(lambda: model.module.encode_audio(features[1]))
        diff = max(float((tower(features[8]) - plain_tower(tower, features[8])).abs().max()), 0.0)
        ours_text = model.module.text_tower(**{k: v for k, v in model.tokenize(captions).items()})
        text_diff = float((ours_text - transformers_text()).abs().max())
    from clapkit.fast import accelerate

    fast = {}
    for backend in args.fast:
        accelerated = accelerate(model, backend)
        fast[f"fast ({accelerated.acceleration}{', auto' if backend == 'auto' else ''})"] = accelerated
    tasks = {}
    for b in (1, 8):
        tasks[(f"audio tower + head b{b}", "plain (NCHW, module by module)")] = (
            b, lambda b=b: model.module.audio_projection(plain_tower(tower, features[b])))
        tasks[(f"audio tower + head b{b}", "fp32 inference (channels-last, BN folded)")] = (
            b, lambda b=b: model.module.audio_features(features[b]))
        for name, accelerated in fast.items():
            tasks[(f"audio tower + head b{b}", name)] = (b, lambda b=b, m=accelerated: m.module.audio_features(
                features[b]))
    for b in (1, 8):
        tasks[(f"embed_audio b{b} (waveform in)", "clapkit fp32")] = (
            b, lambda b=b: model.embed_audio(waves[:b], sample_rate=rate))
        for name, accelerated in fast.items():
            tasks[(f"embed_audio b{b} (waveform in)", name)] = (
                b, lambda b=b, m=accelerated: m.embed_audio(waves[:b], sample_rate=rate))
    tasks.update({
        ("text b32 (tokenisation included)", "transformers BertModel"): (32, transformers_text),
        ("text b32 (tokenisation included)", "clapkit BERT encoder"): (32, lambda: model.embed_text(captions)),
    })
    times: dict = {key: [] for key in tasks}
    with torch.inference_mode():
        for _, fn in tasks.values():
            fn()  # warm-up
        peak_here = peak_bf16 = 0.0
        for _ in range(args.rounds):  # the peaks too are measured in every round (best kept: a shared machine)
            peak_here = max(peak_here, sgemm_gflops(args.threads, repeats=4))
            peak_bf16 = max(peak_bf16, sgemm_gflops(args.threads, repeats=4, dtype=torch.bfloat16))
            for key, (_, fn) in tasks.items():
                cpu = time.process_time()
                times[key].append((_timed(fn), time.process_time() - cpu))
        peak = args.peak_gflops or peak_here
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.2f} at the end; {args.rounds} rounds")
    print(f"audio tower: {per_clip / 1e9:.2f} GFLOP per {clip / rate:g} s clip (with the head: {whole / 1e9:.2f}); "
          f"fp32 matmul peak (2048^3) {peak_here:.0f} GFLOP/s measured in this run (used: {peak:.0f}), bf16 "
          f"{peak_bf16:.0f}; fp32 limit {peak * 1e9 / per_clip:.1f} clips/s, bf16 limit "
          f"{peak_bf16 * 1e9 / per_clip:.1f}")
    for name, accelerated in fast.items():
        with torch.inference_mode():
            cos = torch.nn.functional.cosine_similarity(accelerated.module.audio_features(features[8]),
                                                        model.module.audio_features(features[8]))
        print(f"{name}: cosine to fp32 (8 synthetic clips, tower + head) min {float(cos.min()):.5f}")
    print(f"inference vs plain path max abs diff {diff:.2e}; text vs transformers max abs diff {text_diff:.2e}\n")
    print("| task | variant | median items/s | best items/s | ms/item (median) | CPU ms/item | GFLOP/s | "
          "% of fp32 limit | vs first |")
    print("|---|---|---|---|---|---|---|---|---|")
    first: dict[str, float] = {}
    for (task, variant), (items, _) in tasks.items():
        wall = [t[0] for t in times[(task, variant)]]
        cpu_ms = 1e3 * statistics.median(t[1] for t in times[(task, variant)]) / items
        median, best = statistics.median(wall), min(wall)
        rate_median = items / median
        first.setdefault(task, rate_median)
        gflops = whole * rate_median / 1e9 if task.startswith(("audio", "embed_audio")) else None
        share = f"{100 * gflops / peak:.0f} %" if gflops else ""
        print(f"| {task} | {variant} | {rate_median:.2f} | {items / best:.2f} | {1e3 * median / items:.1f} | "
              f"{cpu_ms:.1f} | {f'{gflops:.0f}' if gflops else ''} | {share} | {rate_median / first[task]:.2f}x |")
    return 0


def _bert_config(model):
    from transformers import BertConfig

    config = dict(model.config.text.hf_config)
    config.pop("model_type", None)
    return BertConfig(**config)


if __name__ == "__main__":
    sys.exit(main())

"""The parity references can tell a wrong key map: each family's mapping is broken at run time (two same-shaped
entries swapped, or one dropped) and the comparison with the reference must notice (the strict load fails, or audio,
text or a temperature moves beyond the tolerance). Nothing in ``src`` is edited; the mappings are monkeypatched.

A mutation that does not take effect (its wrapper never called, its keys missing or of different shapes) fails the
test too, so a refactor that moves a table cannot turn this file vacuous.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch

import clapkit
from clapkit.checkpoints import hf, laion, msclap
from tests.parity.conftest import MEASURED, TOLERANCE

TEXT_L3 = "text_tower.model.encoder.layer.3."
HTSAT_B0 = "audio_tower.layers.0.blocks.0."


class Mutation(NamedTuple):
    reference: str  # file in the parity directory
    module: object  # the family's checkpoint module
    table: str | None  # a mapping table of the module to rewrite, or None: the converter's output is rewritten
    change: tuple  # table: (key_a, key_b) values swapped; output: ("swap", a, b) or ("drop", key)


MUTATIONS = {
    # LAION (checkpoints/laion.py)
    "laion clip-text table: ln_1 <-> ln_2": Mutation("laion_htsat_tiny_clip.pt", laion, "_CLIP_BLOCK",
                                                     ("ln_1", "ln_2")),
    "laion clip-text table: attn.out_proj <-> mlp.c_proj": Mutation("laion_htsat_tiny_clip.pt", laion, "_CLIP_BLOCK",
                                                                   ("attn.out_proj", "mlp.c_proj")),
    "laion roberta layer 3: attention LayerNorm <-> output LayerNorm": Mutation(
        "laion_htsat_tiny.pt", laion, None,
        ("swap", TEXT_L3 + "attention.output.LayerNorm.weight", TEXT_L3 + "output.LayerNorm.weight")),
    "laion roberta layer 3: query <-> value weight": Mutation(
        "laion_htsat_tiny.pt", laion, None,
        ("swap", TEXT_L3 + "attention.self.query.weight", TEXT_L3 + "attention.self.value.weight")),
    "laion htsat block 0: norm1 <-> norm2 bias": Mutation(
        "laion_htsat_tiny.pt", laion, None, ("swap", HTSAT_B0 + "norm1.bias", HTSAT_B0 + "norm2.bias")),
    "laion: logit_scale_a <-> logit_scale_t": Mutation("laion_htsat_tiny.pt", laion, None,
                                                       ("swap", "logit_scale_a", "logit_scale_t")),
    "laion pann14: conv_block2 bn1 <-> bn2 running_var": Mutation(
        "laion_pann14.pt", laion, None,
        ("swap", "audio_tower.conv_block2.bn1.running_var", "audio_tower.conv_block2.bn2.running_var")),
    "laion htsat: drop a relative-position table": Mutation(
        "laion_htsat_tiny.pt", laion, None, ("drop", HTSAT_B0 + "attn.relative_position_bias_table")),
    # MS-CLAP (checkpoints/msclap.py)
    "msclap 2023 renames: audio <-> text projection": Mutation("msclap_2023.pth", msclap, "_RENAMES", (0, 1)),
    "msclap 2022 cnn14: conv_block1 bn1 <-> bn2 running_mean": Mutation(
        "msclap_2022.pth", msclap, None,
        ("swap", "audio_tower.conv_block1.bn1.running_mean", "audio_tower.conv_block1.bn2.running_mean")),
    "msclap 2022: drop the text projection's LayerNorm bias": Mutation(
        "msclap_2022.pth", msclap, None, ("drop", "text_projection.layer_norm.bias")),
    # Hugging Face (checkpoints/hf.py)
    "hf block table: norm1 <-> norm2": Mutation("hf_clap_unfused", hf, "_BLOCK", ("norm1.", "norm2.")),
    "hf block table: mlp.fc1 <-> mlp.fc2": Mutation("hf_clap_unfused", hf, "_BLOCK", ("mlp.fc1.", "mlp.fc2.")),
    "hf: audio bn0 weight <-> bias": Mutation(
        "hf_clap_unfused", hf, None, ("swap", "audio_tower.bn0.weight", "audio_tower.bn0.bias")),
    # query <-> key moves the text by only ~1.5e-4 here (random attention is nearly uniform), value is the clear case
    "hf roberta layer 3: query <-> value weight": Mutation(
        "hf_clap_unfused", hf, None,
        ("swap", TEXT_L3 + "attention.self.query.weight", TEXT_L3 + "attention.self.value.weight")),
    "hf: drop audio_projection.0.bias": Mutation("hf_clap_unfused", hf, None, ("drop", "audio_projection.0.bias")),
}  # fmt: skip


class Result(NamedTuple):
    loaded: bool
    diff: float
    detail: str


def _reference(parity_dir, mutation: Mutation) -> dict:
    stem = mutation.reference.split(".")[0]
    return dict(np.load(parity_dir / f"{stem}.npz"))


def _compare(parity_dir, mutation: Mutation) -> Result:
    """Load the reference checkpoint with clapkit and return the largest difference to the reference's outputs."""
    ref = _reference(parity_dir, mutation)
    tokenizer = None
    if mutation.reference.startswith("msclap"):
        tokenizer = parity_dir / "msclap_tokenizers" / mutation.reference[len("msclap_") : -len(".pth")]
    try:
        model = clapkit.load(parity_dir / mutation.reference, tokenizer=tokenizer)
    except Exception as error:  # the strict load noticed
        return Result(False, float("inf"), f"load fails: {type(error).__name__}: {str(error)[:120]}")
    rate = model.config.frontend.sample_rate
    audio_key = "audio_a" if "audio_a" in ref else "audio_short"
    wave = ref["wave_a"] if "wave_a" in ref else ref["wave_short"]
    ids, mask = torch.from_numpy(ref["text_input_ids"]), torch.from_numpy(ref["text_attention_mask"])
    diffs = {
        "audio": float(np.abs(model.embed_audio([wave], sample_rate=rate) - ref[audio_key]).max()),
        "text": float(np.abs(model.encode_text(ids, mask).numpy() - ref["text_embed"]).max()),
    }
    scales = {"a": "logit_scale_a", "t": "logit_scale_t"} if "logit_scale_a" in ref else {"a": "logit_scale"}
    with torch.no_grad():
        ours = {"a": float(model.module.audio_logit_scale.exp()), "t": float(model.module.text_logit_scale.exp())}
    for side, key in scales.items():
        diffs[f"logit_scale_{side}"] = abs(ours[side] - float(ref[key])) / float(ref[key])
    worst = max(diffs, key=diffs.get)
    return Result(True, diffs[worst], f"largest change: {worst} {diffs[worst]:.3g}")


def _apply(monkeypatch, mutation: Mutation) -> list[bool]:
    """Break the mapping; returns a flag list that turns [True] once the broken mapping ran."""
    ran: list[bool] = []
    module = mutation.module
    if mutation.table is not None:
        table = getattr(module, mutation.table)
        a, b = mutation.change
        if isinstance(table, dict):
            assert a in table and b in table, f"{mutation.table} has no {a!r}/{b!r}: update this mutation"
            value_a, value_b = table[a], table[b]
            monkeypatch.setitem(table, a, value_b)
            monkeypatch.setitem(table, b, value_a)
        else:  # a tuple of (old, new) pairs: swap the targets of two entries
            pairs = [list(p) for p in table]
            pairs[a][1], pairs[b][1] = pairs[b][1], pairs[a][1]
            monkeypatch.setattr(module, mutation.table, tuple(tuple(p) for p in pairs))
        ran.append(True)
        return ran
    original = module.to_clapkit

    def broken(*args, **kwargs):
        out = original(*args, **kwargs)
        if mutation.change[0] == "swap":
            _, a, b = mutation.change
            assert a in out and b in out and out[a].shape == out[b].shape, f"cannot swap {a} and {b}"
            out[a], out[b] = out[b], out[a]
        else:
            assert mutation.change[1] in out, f"no {mutation.change[1]} to drop"
            del out[mutation.change[1]]
        ran.append(True)
        return out

    monkeypatch.setattr(module, "to_clapkit", broken)
    return ran


@pytest.mark.parametrize("reference", sorted({m.reference for m in MUTATIONS.values()}))
def test_unmutated_mapping_matches(parity_dir, reference):
    """Control: each reference used below matches clapkit when nothing is broken."""
    mutation = next(m for m in MUTATIONS.values() if m.reference == reference)
    result = _compare(parity_dir, mutation)
    assert result.loaded and result.diff <= TOLERANCE, result.detail


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_broken_mapping_is_noticed(parity_dir, monkeypatch, name):
    mutation = MUTATIONS[name]
    ran = _apply(monkeypatch, mutation)
    result = _compare(parity_dir, mutation)
    assert ran, f"{name}: the mutation never ran (the mapping moved?)"
    MEASURED.append((f"mutation: {name}"[:60], result.detail[:52], result.diff))
    print(f"[mutation] {name}: {result.detail}")
    assert not result.diff <= TOLERANCE, f"{name} went unnoticed: {result.detail}"  # NaN counts as noticed

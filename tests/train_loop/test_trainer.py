"""The training loop in one process: schedule, batches, freezing, metrics, curves, checkpoints, text towers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import clapkit
from clapkit.tokenizers import load_tokenizer
from clapkit.train import TrainConfig, train
from clapkit.train.batches import Collator, GlobalBatchSampler, RandomCaption, StreamBatches
from clapkit.train.checkpointing import list_checkpoints
from clapkit.train.config import ModelSetupConfig
from clapkit.train.loop import warmup_cosine
from clapkit.train.metrics import read_metrics
from clapkit.train.modeling import build_model, merge_overrides, text_tower_from_pretrained
from clapkit.train.sources import holdout_split
from tests.small_models import SMALL_BERT
from tests.train_loop.tiny import BASE_MODEL, ToneDataset, tiny_config_dict, tiny_model_overrides

# the tiny HTSAT's classifier convolution (unused by CLAP) has a zero-size kernel at a 64x64 spectrogram image
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")



def test_warmup_then_cosine():
    warmup, total, base = 4, 20, 1e-3
    lrs = [base * warmup_cosine(s, warmup, total, min_ratio=0.1) for s in range(total)]
    assert lrs[:warmup] == pytest.approx([base * (s + 1) / warmup for s in range(warmup)])
    for s in range(warmup, total):
        progress = (s - warmup) / (total - warmup)
        assert lrs[s] == pytest.approx(base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))))
    assert all(a >= b for a, b in zip(lrs[warmup - 1 :], lrs[warmup:], strict=False))  # never rises after warmup


def test_ranks_split_each_global_batch_in_order():
    def batches(rank, world_size, start=0, accumulation=2):
        sampler = GlobalBatchSampler(50, 8, accumulation, rank, world_size, seed=1, start_step=start, max_steps=9)
        return list(sampler)

    single = batches(0, 1)
    pair = [batches(0, 2), batches(1, 2)]
    assert len(single) == 9 * 2
    for i, micro in enumerate(single):  # rank 0's slice then rank 1's slice is the one-process micro-batch
        assert pair[0][i] + pair[1][i] == micro
    seen = [index for micro in single[:12] for index, _ in micro]  # 6 steps x 8 = the first 48 of epoch 0
    assert len(set(seen)) == 48
    assert batches(0, 1, start=5) == single[10:]  # resuming at step 5 reads what step 5 would have read
    assert [key for _, key in single[3]] == [(1, p) for p in range(4, 8)]


def test_item_randomness_does_not_depend_on_batch_composition():
    config = merge_overrides(clapkit.get_config(BASE_MODEL), tiny_model_overrides())
    tokenizer = load_tokenizer(config.text)
    collator = Collator(config, tokenizer, RandomCaption(), seed=4)
    data = ToneDataset(6, max_seconds=1.8, min_seconds=1.2)  # longer than the 1 s clip: random crops
    together = collator([((3, p), data[p]) for p in range(4)])
    alone = collator([((3, 2), data[2])])
    torch.testing.assert_close(together.features[2], alone.features[0])
    other_step = collator([((4, 2), data[2])])
    assert not torch.equal(other_step.features[0], alone.features[0])  # a new crop at another step
    assert together.is_longer.all()


class _Stream(torch.utils.data.IterableDataset):
    """An iterable dataset with a position, like ShardDataset without workers."""

    def __init__(self, items):
        self.items, self.position = items, 0

    def __iter__(self):
        while self.position < len(self.items):
            self.position += 1
            yield self.items[self.position - 1]
        self.position = 0

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def test_stream_batches_resume_at_their_position():
    config = merge_overrides(clapkit.get_config(BASE_MODEL), tiny_model_overrides())
    tokenizer = load_tokenizer(config.text)
    collator = Collator(config, tokenizer, RandomCaption(), seed=0)
    items = ToneDataset(7).items
    full = StreamBatches(_Stream(items), collator, 3, 1, 0, 1, start_step=0, max_steps=5)
    whole = []
    for step, batch in enumerate(full):
        whole.append(batch.ids)
        if step == 1:
            state = full.state_dict()
    resumed = StreamBatches(_Stream(items), collator, 3, 1, 0, 1, start_step=2, max_steps=5, state=state)
    assert [batch.ids for batch in resumed] == whole[2:]
    assert whole[2] == ["tone006", "tone000", "tone001"]  # the stream wraps into its next pass


def test_holdout_split_is_seeded_and_disjoint():
    data = ToneDataset(20)
    train_a, held_a = holdout_split(data, 0.25, seed=3, sample_rate=16000)
    train_b, held_b = holdout_split(data, 0.25, seed=3, sample_rate=16000)
    assert len(held_a) == 5 and len(train_a) == 15
    assert list(held_a.indices) == list(held_b.indices)
    assert not set(held_a.indices) & set(train_a.indices)


def test_short_training_run_writes_metrics_curves_and_checkpoints(tmp_path):
    config = TrainConfig.from_dict(tiny_config_dict(str(tmp_path), max_steps=4, checkpoint_every=1, keep_last=2,
                                                    eval_every=2, **{"model.freeze_text": True}))
    torch.manual_seed(config.seed)
    _, initial = build_model(config.model)
    result = train(config)
    assert result.step == 4
    rows = read_metrics(tmp_path, "train")
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(row["loss"]) and row["loss"] > 0 for row in rows)
    assert rows[0]["lr"] == pytest.approx(config.optim.lr * warmup_cosine(0, 2, 4))
    val = read_metrics(tmp_path, "val")
    assert [row["step"] for row in val] == [2, 4]
    for key in ("text_to_audio_R@1", "text_to_audio_R@5", "text_to_audio_R@10", "audio_to_text_R@1"):
        assert 0.0 <= val[-1][key] <= 1.0
    assert val[-1]["text_to_audio_R@10"] >= val[-1]["text_to_audio_R@1"]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((tmp_path / "tensorboard").iterdir())
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 4]

    trained = clapkit.load(result.last_checkpoint).module.state_dict()
    before = initial.state_dict()
    text_keys = [k for k in before if k.startswith("text_tower.")]
    audio_keys = [k for k in before if k.startswith("audio_tower.") and before[k].is_floating_point()]
    assert all(torch.equal(trained[k], before[k]) for k in text_keys)  # frozen
    assert any(not torch.equal(trained[k], before[k]) for k in audio_keys)  # trained
    assert not torch.equal(trained["text_projection.0.weight"], before["text_projection.0.weight"])


def test_text_tower_from_a_local_pretrained_directory(tmp_path):
    from transformers import BertConfig, BertModel

    hf = {k: v for k, v in SMALL_BERT.items() if k != "model_type"}
    torch.manual_seed(5)
    BertModel(BertConfig(**hf)).save_pretrained(tmp_path)
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    text_config, weights = text_tower_from_pretrained(tmp_path)
    assert (text_config.kind, text_config.pooling, text_config.width) == ("minilm", "mean", 32)

    setup = ModelSetupConfig(name=BASE_MODEL, overrides=tiny_model_overrides(), text_pretrained=str(tmp_path))
    config, module = build_model(setup)
    assert config.text.kind == "minilm"
    state = module.text_tower.state_dict()
    for key, value in weights.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    ids = torch.tensor([[101, 2000, 3000, 102, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    module.eval()
    hidden = BertModel.from_pretrained(tmp_path).eval()(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = (hidden[:, :4]).mean(1)
    torch.testing.assert_close(module.text_tower(ids, mask), expected, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_trains_and_keeps_float32_weights(tmp_path):
    config = TrainConfig.from_dict(tiny_config_dict(str(tmp_path), max_steps=1, precision="bf16", eval_every=1))
    result = train(config)
    assert np.isfinite(result.train_loss)
    assert 0.0 <= result.val_metrics["text_to_audio_R@1"] <= 1.0
    weights = clapkit.load(result.last_checkpoint).module.state_dict()
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())


def test_training_from_shards_resumes_at_the_stream_position(tmp_path):
    import shutil

    import soundfile

    from clapkit.train.manifests import ManifestEntry
    from clapkit.train.shard_writer import write_shards

    entries = []
    for item in ToneDataset(20, max_seconds=1.4).items:
        path = tmp_path / "audio" / f"{item['id']}.wav"
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, item["waveform"], 16000)
        entries.append(ManifestEntry(item["id"], str(path), tuple(item["captions"])))
    write_shards(entries, tmp_path / "shards", sample_rate=16000, max_items_per_shard=6)

    def config(name: str) -> TrainConfig:
        values = tiny_config_dict(str(tmp_path / name), max_steps=6, checkpoint_every=1, keep_last=10, eval_every=100)
        values["data"] = {"train": str(tmp_path / "shards"), "shuffle_buffer": 5, "num_workers": 0}
        return TrainConfig.from_dict(values)

    train(config("full"))  # 6 steps x 8 items: the 20-item stream is read 2.4 times
    middle = tmp_path / "full" / "checkpoints" / "step_00000003"
    shutil.copytree(middle, tmp_path / "resumed" / "checkpoints" / middle.name)
    assert torch.load(middle / "train_state.pt", weights_only=True)["data"][0]["kind"] == "stream"
    train(config("resumed"))
    expected = clapkit.load(tmp_path / "full" / "checkpoints" / "step_00000006").module.state_dict()
    resumed = clapkit.load(tmp_path / "resumed" / "checkpoints" / "step_00000006").module.state_dict()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)

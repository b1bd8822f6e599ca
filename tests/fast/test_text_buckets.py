"""Length buckets in the text tower: same features as one padded batch, every row exactly once."""

from __future__ import annotations

import pytest
import torch

from clapkit.models.clap import ClapNetwork
from clapkit.models.text import length_buckets
from clapkit.tokenizers import load_tokenizer
from tests.small_models import small_config


@pytest.mark.parametrize("lengths", [[5], [3, 3, 3], [20, 4, 4, 4, 4, 4, 4, 4, 4, 19, 5], list(range(1, 40))])
def test_buckets_cover_every_row_once_with_enough_length(lengths):
    buckets = length_buckets(lengths)
    rows = sorted(i for bucket, _ in buckets for i in bucket)
    assert rows == list(range(len(lengths)))
    for bucket, padded in buckets:
        assert padded == max(lengths[i] for i in bucket)


def test_buckets_split_only_when_it_saves_work():
    assert len(length_buckets([10] * 8)) == 1
    assert len(length_buckets([60] * 16 + [8] * 16, overhead=48)) == 2
    assert len(length_buckets([9, 10, 11], overhead=48)) == 1


def test_bucketed_tower_equals_one_padded_batch():
    config = small_config()
    torch.manual_seed(0)
    tower = ClapNetwork(config).text_tower.eval()
    captions = ["a dog", "rain"] * 6 + ["a very long caption about a train passing a station on a windy night"] * 6
    tokens = load_tokenizer(config.text, None)(captions)
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    assert len(length_buckets(mask.sum(-1).tolist())) > 1
    with torch.inference_mode():
        one = tower._pooled(ids, mask)
        bucketed = tower(ids, mask)
        padded77 = tower(torch.nn.functional.pad(ids, (0, 77 - ids.shape[1])),
                         torch.nn.functional.pad(mask, (0, 77 - ids.shape[1])))
        left = tower(ids.flip(-1), mask.flip(-1))  # not right-padded: one call, as given
        left_one = tower._pooled(ids.flip(-1), mask.flip(-1))
    torch.testing.assert_close(bucketed, one, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded77, one, atol=1e-5, rtol=0)
    torch.testing.assert_close(left, left_one, atol=0, rtol=0)

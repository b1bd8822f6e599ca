"""Every metric against values worked out by hand from small examples."""

import numpy as np
import pytest

from clapkit.eval import metrics as M


def test_ranks_and_top_k_accuracy_with_ties_broken_by_index():
    scores = np.array([[0.1, 0.7, 0.2],   # target 1 is first -> rank 0
                       [0.5, 0.5, 0.0],   # target 1 ties class 0, which is listed first -> rank 1
                       [0.3, 0.2, 0.1]])  # target 2 is last -> rank 2
    targets = np.array([1, 1, 2])
    np.testing.assert_array_equal(M.rank_of_targets(scores, targets), [0, 1, 2])
    assert M.top_k_accuracy(scores, targets, 1) == pytest.approx(1 / 3)
    assert M.top_k_accuracy(scores, targets, 2) == pytest.approx(2 / 3)
    assert M.top_k_accuracy(scores, targets, 5) == 1.0


def test_confusion_matrix_and_per_class_accuracy():
    targets = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 0, 1, 0, 0])
    confusion = M.confusion_matrix(targets, predicted, 4)
    expected = np.zeros((4, 4), int)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[1, 0], expected[2, 0] = 2, 1, 1, 1, 1
    np.testing.assert_array_equal(confusion, expected)
    accuracy = M.per_class_accuracy(confusion)
    np.testing.assert_allclose(accuracy[:3], [2 / 3, 1 / 2, 0.0])
    assert np.isnan(accuracy[3])  # no clips of class 3


def test_rank_statistics_as_laion_get_metrics():
    ranks = np.array([0, 3, 12, 1])  # 0-based
    stats = M.rank_statistics(ranks)
    assert stats["R@1"] == 0.25 and stats["R@5"] == 0.75 and stats["R@10"] == 0.75
    assert stats["mAP@10"] == pytest.approx((1 / 1 + 1 / 4 + 0 + 1 / 2) / 4)
    assert stats["mean_rank"] == pytest.approx((0 + 3 + 12 + 1) / 4 + 1)
    assert stats["median_rank"] == np.floor((1 + 3) / 2) + 1  # median of 0-based ranks is 2.0 -> 3


def test_average_precision_by_hand():
    # ranking: relevant, not, relevant, not -> precision at the hits 1/1 and 2/3
    assert M.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # tied scores form one threshold: {0.5, 0.5} holds 1 of the 1 positive at 3 retrieved -> precision 1/3
    assert M.average_precision([0.9, 0.5, 0.5], [0, 1, 0]) == pytest.approx(1 / 3)
    assert np.isnan(M.average_precision([0.2, 0.1], [0, 0]))


def test_mean_average_precision_is_macro_over_classes_with_positives():
    scores = np.array([[0.9, 0.1, 0.3],
                       [0.2, 0.8, 0.4],
                       [0.7, 0.6, 0.2]])
    targets = np.array([[1, 0, 0],
                        [0, 1, 0],
                        [0, 1, 0]])
    # class 0: ranking 0.9(+) 0.7 0.2 -> AP 1; class 1: 0.8(+) 0.6(+) 0.1 -> AP 1; class 2: no positives, skipped
    assert M.mean_average_precision(scores, targets) == pytest.approx(1.0)
    targets = np.array([[0, 1, 0],
                        [0, 0, 1],
                        [1, 0, 0]])
    # class 0: 0.9 0.7(+) 0.2 -> 1/2; class 1: 0.8 0.6 0.1(+) -> 1/3; class 2: 0.4(+) 0.3 0.2 -> 1
    np.testing.assert_allclose(M.per_class_average_precision(scores, targets), [1 / 2, 1 / 3, 1.0])
    assert M.mean_average_precision(scores, targets) == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)


def test_average_precision_agrees_with_scikit_learn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 40) / 5.0  # many ties
    relevant = rng.integers(0, 2, 40)
    assert M.average_precision(scores, relevant) == pytest.approx(average_precision_score(relevant, scores))


def retrieval_example():
    """2 clips x 5 captions (captions 0-4 describe clip 0, 5-9 clip 1). Audio embeddings are the unit axes, so
    similarity[caption, clip] is caption row [clip] - the numbers below are the similarities themselves."""
    to_clip0 = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.0, 0.4]
    to_clip1 = [0.6, 0.1, 0.05, 0.75, 0.2, 0.3, 0.95, 0.65, 0.85, 0.45]
    return np.eye(2), np.array([to_clip0, to_clip1]).T, np.repeat([0, 1], 5)


def test_retrieval_text_to_audio_by_hand():
    audio, text, owners = retrieval_example()
    m = M.retrieval_metrics(audio, text, owners)
    # each caption's own clip wins unless the other clip scores higher: captions 0, 3 and 5 rank their clip 2nd
    ranks = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0, 0])
    assert m["text_to_audio_R@1"] == pytest.approx(7 / 10)
    assert m["text_to_audio_R@5"] == m["text_to_audio_R@10"] == 1.0
    assert m["text_to_audio_mAP@10"] == pytest.approx((7 * 1 + 3 * 1 / 2) / 10)
    assert m["text_to_audio_mean_rank"] == pytest.approx(ranks.mean() + 1)
    assert m["text_to_audio_median_rank"] == 1.0


def test_retrieval_audio_to_text_by_hand_laion_caption_order_and_sorted():
    audio, text, owners = retrieval_example()
    m = M.retrieval_metrics(audio, text, owners)
    # clip 0 ranks all 10 captions: 1, 5, 3, 7, 0, 9, 4, 6, 2, 8 -> its captions 0..4 sit at 0-based ranks
    # 4, 0, 8, 2, 6 (caption order); clip 1: 6, 8, 3, 7, 0, 9, 5, 4, 1, 2 -> captions 5..9 at 6, 0, 3, 1, 5
    laion_clip0 = (1 / 5 + 2 / 1 + 3 / 9 + 4 / 3 + 5 / 7) / 5
    laion_clip1 = (1 / 7 + 2 / 1 + 3 / 4 + 4 / 2 + 5 / 6) / 5
    sorted_clip0 = (1 / 1 + 2 / 3 + 3 / 5 + 4 / 7 + 5 / 9) / 5
    sorted_clip1 = (1 / 1 + 2 / 2 + 3 / 4 + 4 / 6 + 5 / 7) / 5
    assert m["audio_to_text_mAP@10"] == pytest.approx((laion_clip0 + laion_clip1) / 2)
    assert m["audio_to_text_mAP@10_sorted"] == pytest.approx((sorted_clip0 + sorted_clip1) / 2)
    assert laion_clip1 > 1  # why the sorted variant exists: in caption order the "AP" can exceed 1
    assert m["audio_to_text_R@1"] == 1.0 and m["audio_to_text_mean_rank"] == 1.0  # both clips' best caption is 1st
    assert m["num_clips"] == 2 and m["num_captions"] == 10


def test_retrieval_one_caption_per_clip_is_laion_get_metrics():
    audio = np.eye(3)
    text = np.array([[0.2, 0.9, 0.1],   # caption of clip 0 -> clip 0 ranked 2nd (0-based 1)
                     [0.1, 0.8, 0.3],   # caption of clip 1 -> 1st
                     [0.6, 0.5, 0.4]])  # caption of clip 2 -> 3rd
    m = M.retrieval_metrics(audio, text, [0, 1, 2])
    assert m["text_to_audio_R@1"] == pytest.approx(1 / 3)
    assert m["text_to_audio_mAP@10"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    # audio to text: clip 0 column (0.2, 0.1, 0.6) -> its caption 2nd; clip 1 (0.9, 0.8, 0.5) -> 2nd;
    # clip 2 (0.1, 0.3, 0.4) -> 1st
    assert m["audio_to_text_R@1"] == pytest.approx(1 / 3)
    assert m["audio_to_text_mAP@10"] == m["audio_to_text_mAP@10_sorted"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert m["audio_to_text_mean_rank"] == pytest.approx((2 + 2 + 1) / 3)
    assert m["audio_to_text_median_rank"] == 2.0


def test_retrieval_rejects_bad_caption_owners():
    with pytest.raises(ValueError, match="caption_audio"):
        M.retrieval_metrics(np.eye(2), np.eye(2), [0, 2])
    with pytest.raises(ValueError, match="caption embeddings"):
        M.retrieval_metrics(np.eye(2), np.eye(2), [0])

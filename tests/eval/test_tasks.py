"""Zero-shot classification, retrieval and the linear probe: numbers by hand, then end to end on a small model."""

import numpy as np
import pytest

from clapkit.eval import (
    EmbeddingCache,
    EvalDataset,
    OntologyDescriber,
    class_embeddings,
    evaluate_linear_probe,
    evaluate_retrieval,
    evaluate_zero_shot,
    linear_probe,
    load_dataset,
    model_fingerprint,
    retrieval_metrics,
    score_zero_shot,
    zero_shot_probabilities,
)
from clapkit.eval.cache import file_key
from clapkit.eval.datasets import Clip, DatasetError, ProbeSplit, cross_validation
from tests.eval.conftest import unit


def test_zero_shot_probabilities_softmax_and_sigmoid():
    audio = unit([[1.0, 0.0]])
    classes = unit([[1.0, 0.0], [0.0, 1.0]])
    probs = zero_shot_probabilities(audio, classes, logit_scale=2.0)
    np.testing.assert_allclose(probs, [[np.exp(2) / (np.exp(2) + 1), 1 / (np.exp(2) + 1)]])
    sig = zero_shot_probabilities(audio, classes, logit_scale=2.0, multi_label=True)
    np.testing.assert_allclose(sig, [[1 / (1 + np.exp(-2)), 0.5]])


def test_score_zero_shot_single_label_by_hand():
    scores = np.array([[0.6, 0.3, 0.1],   # true 0, predicted 0
                       [0.2, 0.5, 0.3],   # true 2, predicted 1 (target 2nd)
                       [0.1, 0.2, 0.7],   # true 2, predicted 2
                       [0.5, 0.1, 0.4]])  # true 1, predicted 0 (target 3rd)
    result = score_zero_shot(scores, [(0,), (2,), (2,), (1,)], ["a", "b", "c"])
    assert result.metrics["top1_accuracy"] == 0.5
    assert result.metrics["top5_accuracy"] == 1.0
    assert result.metrics["balanced_accuracy"] == pytest.approx((1 + 0 + 1 / 2) / 3)
    assert result.per_class == {"a": 1.0, "b": 0.0, "c": 0.5}
    np.testing.assert_array_equal(result.confusion, [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    assert result.metrics["mean_rank"] == pytest.approx((1 + 2 + 1 + 3) / 4)
    assert result.metrics["mAP@10"] == pytest.approx((1 + 1 / 2 + 1 + 1 / 3) / 4)


def test_score_zero_shot_multi_label_by_hand():
    scores = np.array([[0.9, 0.8], [0.3, 0.6], [0.4, 0.1]])
    result = score_zero_shot(scores, [(0, 1), (1,), ()], ["x", "y"], multi_label=True)
    # x: 0.9(+) 0.4 0.3 -> AP 1; y: 0.8(+) 0.6(+) 0.1 -> AP 1
    assert result.metrics["mAP"] == pytest.approx(1.0)
    result = score_zero_shot(scores, [(1,), (0,), (0,)], ["x", "y"], multi_label=True)
    # x: 0.9 0.4(+) 0.3(+) -> (1/2 + 2/3) / 2; y: 0.8(+) -> 1
    assert result.per_class["x"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result.metrics["mAP"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1) / 2)
    assert result.metrics["top1_hit"] == pytest.approx(1 / 3)  # top labels x, y, x: only the last is true


def test_linear_probe_cross_validates_over_official_folds():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    labels = [k % 3 for k in range(30)]
    x = centres[labels] + 0.3 * rng.standard_normal((30, 3))
    clips = [Clip(f"{i}.wav", (l,), fold=str(i // 10 + 1)) for i, l in enumerate(labels)]
    data = EvalDataset("toy", "/", clips, ["a", "b", "c"], probe_splits=cross_validation(["1", "2", "3"]))
    result = linear_probe(x, data)
    assert result["accuracy"] == 1.0 and set(result["rounds"]) == {"fold1", "fold2", "fold3"}
    assert result["rounds"]["fold1"]["train_clips"] == 20 and result["rounds"]["fold1"]["test_clips"] == 10
    x[0] = centres[1]  # clip 0 (class a, fold 1) now sits on class b: fold 1 gets 9 of 10 right
    result = linear_probe(x, data)
    assert result["rounds"]["fold1"]["accuracy"] == pytest.approx(9 / 10)
    assert result["accuracy"] == pytest.approx((9 / 10 + 1 + 1) / 3)


def test_linear_probe_multi_label_map_on_a_holdout_split():
    x = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9], [1.0, 0.05], [0.05, 1.0]])
    labels = [(0,), (0,), (1,), (1,), (0,), (1,)]
    folds = ["train"] * 4 + ["eval"] * 2
    clips = [Clip(f"{i}.wav", l, fold=f) for i, (l, f) in enumerate(zip(labels, folds))]
    data = EvalDataset("toy", "/", clips, ["a", "b"], multi_label=True,
                       probe_splits=[ProbeSplit("eval", ("train",), ("eval",))])
    result = linear_probe(x, data, C=10.0)
    assert result["mAP"] == 1.0 and result["rounds"]["eval"]["test_clips"] == 2
    with pytest.raises(DatasetError, match="no linear-probe folds"):
        linear_probe(x, EvalDataset("none", "/", clips, ["a", "b"]))


def test_zero_shot_end_to_end_with_reclap_and_cache(small_model, sound_folder, cache_dir):
    data = load_dataset("folder", sound_folder)
    cache = EmbeddingCache(cache_dir, model_fingerprint(small_model))
    report = evaluate_zero_shot(small_model, data, templates=["laion", "A {} noise."], reclap=OntologyDescriber(),
                                reclap_prompts=3, cache=cache)
    assert set(report["results"]) == {"templates", "reclap"}
    first = report["results"]["templates"]
    assert first["prompts"]["beep"] == ["This is a sound of beep.", "A beep noise."]
    assert all(len(p) == 3 for p in report["results"]["reclap"]["prompts"].values())
    assert np.sum(first["confusion_matrix"]["rows_true_columns_predicted"]) == 6
    assert 0.0 <= first["metrics"]["top1_accuracy"] <= 1.0 and first["metrics"]["num_clips"] == 6
    # the numbers follow from the cached audio embeddings (checked against fresh ones in the retrieval test)
    audio = cache.lookup("audio", [file_key(c.path) for c in data.clips], compute=None)
    prompts = [["This is a sound of beep.", "A beep noise."], ["This is a sound of hiss.", "A hiss noise."]]
    probs = zero_shot_probabilities(audio, class_embeddings(small_model.embed_text, prompts), small_model.logit_scale)
    expected = score_zero_shot(probs, [c.labels for c in data.clips], data.classes)
    assert first["metrics"] == pytest.approx(expected.metrics, abs=1e-6)

    def no_audio_embedding(*args, **kwargs):
        raise AssertionError("audio was embedded again")

    small_model.embed_waveforms, original = no_audio_embedding, small_model.embed_waveforms
    try:
        again = evaluate_zero_shot(small_model, data, templates="ms-clap",
                                   cache=EmbeddingCache(cache_dir, cache.fingerprint))
    finally:
        small_model.embed_waveforms = original
    assert again["settings"]["templates"] == ["this is the sound of {}"]
    assert again["cache"]["misses"] == 2 and again["cache"]["hits"] == 6  # 2 new prompts, 6 cached clips


def test_retrieval_end_to_end_matches_metrics_on_the_embeddings(small_model, sound_folder, cache_dir):
    data = load_dataset("csv", sound_folder / "manifest.csv")
    cache = EmbeddingCache(cache_dir, model_fingerprint(small_model))
    report = evaluate_retrieval(small_model, data, cache=cache)
    numbers = report["results"]["retrieval"]["metrics"]
    assert numbers["num_clips"] == 6 and numbers["num_captions"] == 12
    assert report["settings"]["captions_per_clip"] == {"2": 6}
    audio = small_model.embed_audio([c.path for c in data.clips])
    captions = [t for c in data.clips for t in c.captions]
    expected = retrieval_metrics(audio, small_model.embed_text(captions), np.repeat(np.arange(6), 2))
    for key, value in expected.items():
        assert numbers[key] == pytest.approx(value, abs=1e-6), key


def test_probe_end_to_end_and_task_errors(small_model, sound_folder, cache_dir):
    data = load_dataset("folder", sound_folder, num_folds=3)
    cache = EmbeddingCache(cache_dir, model_fingerprint(small_model))
    report = evaluate_linear_probe(small_model, data, cache=cache)
    rounds = report["results"]["linear_probe"]["per_round"]
    assert set(rounds) == {"fold1", "fold2", "fold3"} and all(r["test_clips"] == 2 for r in rounds.values())
    assert report["results"]["linear_probe"]["metrics"]["accuracy"] == pytest.approx(
        np.mean([r["accuracy"] for r in rounds.values()]))
    captions_only = EvalDataset("c", sound_folder, [Clip(sound_folder / "beep" / "b0.wav", captions=("x",))])
    with pytest.raises(DatasetError, match="no class labels"):
        evaluate_zero_shot(small_model, captions_only, cache=cache)
    with pytest.raises(DatasetError, match="no captions"):
        evaluate_retrieval(small_model, data, cache=cache)


def test_undecodable_clips_are_left_out_and_reported(small_model, sound_folder, cache_dir, tmp_path):
    broken = tmp_path / "beep" / "broken.wav"
    broken.parent.mkdir()
    broken.write_bytes(b"RIFF not really a wave file")
    clips = [Clip(p, (0 if p.parent.name == "beep" else 1,)) for p in sorted(sound_folder.glob("*/*.wav"))]
    data = EvalDataset("with-broken", tmp_path, clips + [Clip(broken, (0,))], ["beep", "hiss"])
    report = evaluate_zero_shot(small_model, data, cache=EmbeddingCache(cache_dir, model_fingerprint(small_model)))
    assert report["dataset"]["unreadable"] == 1 and str(broken) in report["dataset"]["unreadable_examples"]
    assert report["results"]["templates"]["metrics"]["num_clips"] == 6

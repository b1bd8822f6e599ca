"""Real ambience as the background noise of augmented views: which clips are used, and that they are used."""

from __future__ import annotations

import numpy as np

from clapkit.recipes import features, trainset


def _rows(n_per_class: int) -> list[dict]:
    rows = []
    for name in ("Wind", "Rain", "Dog", "Crowd", "Bell"):
        for i in range(n_per_class):
            rows.append({"audio": f"/c/{name}/{i}.flac", "class": name, "source_package": f"pkg{i % 3}"})
    return rows


def test_background_rows_are_ambience_training_clips_spread_over_classes():
    chosen = trainset.background_rows(_rows(40), seed=0)
    assert len(chosen) == trainset.BACKGROUND_CLIPS
    classes = [r["class"] for r in chosen]
    assert set(classes) == {"Wind", "Rain", "Crowd"}  # Dog and Bell are not ambience
    assert max(classes.count(c) for c in set(classes)) - min(classes.count(c) for c in set(classes)) <= 1
    assert chosen == trainset.background_rows(_rows(40), seed=0)
    assert trainset.background_rows([r for r in _rows(40) if r["class"] in ("Dog", "Bell")], seed=0) == []


def test_background_noise_changes_the_noisy_views_and_their_cache_key(tmp_path):
    rate = 44100
    t = np.arange(2 * rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "tone.wav"
    import soundfile

    soundfile.write(path, tone, rate)
    hum = (0.3 * np.sign(np.sin(2 * np.pi * 50 * t))).astype(np.float32)
    keys = [features._key("view", k) for k in range(12)]
    _, plain, _ = features._views_of(str(path), keys, rate)
    _, noisy, _ = features._views_of(str(path), keys, rate, [hum])
    again = features._views_of(str(path), keys, rate, [hum])[1]
    assert all(np.array_equal(a, b) for a, b in zip(noisy, again))  # seeded per key
    changed = sum(not np.allclose(a, b) for a, b in zip(plain, noisy))
    assert 0 < changed < len(keys)  # only the views that drew background noise differ
    loaded, key = features.load_backgrounds([{"audio": str(path)}, {"audio": str(tmp_path / "missing.wav")}], rate)
    assert len(loaded) == 1 and key and key != features.load_backgrounds([], rate)[1]

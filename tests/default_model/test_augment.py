"""Augmentation and sampling of the default-model recipe."""

from __future__ import annotations

import numpy as np

from clapkit.recipes import augment


def _band_energy(x: np.ndarray, rate: int, low: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[freqs > low].sum() / spectrum.sum())


def test_bandwidth_limit_removes_energy_above_the_cutoff():
    rate = 44100
    noise = np.random.default_rng(0).standard_normal(rate).astype(np.float32)
    assert _band_energy(noise, rate, 8500) > 0.5
    limited = augment.bandwidth_limit(noise, rate, 16000)
    assert len(limited) == len(noise)
    assert _band_energy(limited, rate, 8500) < 1e-3  # nothing above 8 kHz survives a 16 kHz recording
    assert np.corrcoef(limited, noise)[0, 1] > 0.5  # the band below the cutoff is kept


def test_noise_mixing_hits_the_snr():
    rng = np.random.default_rng(1)
    signal = np.sin(np.arange(20000) / 5.0).astype(np.float32)
    pink = augment.coloured_noise(20000, 1.0, rng)
    mixed = augment.mix_at_snr(signal, pink, 10.0)
    snr = 10 * np.log10(np.mean(signal**2) / np.mean((mixed - signal) ** 2))
    assert abs(snr - 10.0) < 1e-3
    spectrum = np.abs(np.fft.rfft(augment.coloured_noise(2**16, 2.0, rng))) ** 2
    assert spectrum[10:100].mean() > 100 * spectrum[10000:20000].mean()  # brown noise falls with frequency


def test_augmented_view_is_seeded_and_cropped():
    x = np.random.default_rng(2).standard_normal(44100 * 4).astype(np.float32)
    a, done_a = augment.augment_view(x, 44100, np.random.default_rng(5), 44100)
    b, done_b = augment.augment_view(x, 44100, np.random.default_rng(5), 44100)
    assert len(a) == 44100 and np.array_equal(a, b) and done_a == done_b
    seen = [augment.augment_view(x, 44100, np.random.default_rng(s), 44100)[1] for s in range(40)]
    assert any("rate" in d for d in seen) and any("snr_db" in d for d in seen) and any(not d for d in seen)


def test_mixture_caption_format_and_mix():
    assert augment.mixture_caption("A dog barks.", "Rain falls.") == "A dog barks while rain falls."
    assert augment.mixture_caption("a car passes", "UFO hums!") == "a car passes while UFO hums."
    a, b = np.ones(1000, np.float32), np.full(300, 0.5, np.float32)
    mixed = augment.mix_pair(a, b, np.random.default_rng(0), 2000)
    assert len(mixed) == 1000 and (mixed > 1).sum() == 300  # b lies inside a, at a random offset


def test_balanced_sampler_proportions():
    classes = ["big"] * 90 + ["small"] * 10
    packages = ["p1"] * 90 + ["p1"] * 8 + ["p2"] * 2
    w = augment.balanced_weights(classes, packages)
    assert np.isclose(w.sum(), 1.0)
    assert np.isclose(w[:90].sum(), 0.5) and np.isclose(w[90:].sum(), 0.5)  # classes equally likely
    assert np.isclose(w[90:98].sum(), 0.25) and np.isclose(w[98:].sum(), 0.25)  # packages within a class
    draws = np.random.default_rng(0).choice(100, size=20000, p=w)
    assert abs(np.mean(draws >= 90) - 0.5) < 0.02


def test_training_cap_spreads_over_packages():
    from clapkit.recipes.trainset import cap_per_class

    rows = [{"audio": f"{c}{p}{i}", "class": c, "source_package": p}
            for c, n in (("big", 30), ("small", 3)) for p in ("a", "b") for i in range(n if p == "a" else 2)]
    capped = cap_per_class(rows, 6, 0)
    big = [r for r in capped if r["class"] == "big"]
    assert len(big) == 6 and sum(r["source_package"] == "b" for r in big) == 2  # package b gives all it has
    assert sum(r["class"] == "small" for r in capped) == 5  # under the cap: everything
    assert capped == [r for r in rows if r in capped] and capped == cap_per_class(rows, 6, 0)


def test_room_reverberates_keeps_length_and_peak_and_off_changes_nothing():
    rate = 44100
    click = np.zeros(rate, np.float32)
    click[1000] = 0.8
    wet, rt60, ratio = augment.in_room(click, rate, np.random.default_rng(3))
    assert len(wet) == len(click) and abs(float(np.max(np.abs(wet))) - 0.8) < 1e-6
    assert augment.ROOM_RT60[0] <= rt60 <= augment.ROOM_RT60[1] and augment.ROOM_WET[0] <= ratio <= augment.ROOM_WET[1]
    late = slice(1000 + int(0.05 * rate), 1000 + int(0.15 * rate))
    assert float(np.sum(wet[late] ** 2)) > 1e-4 and not np.any(click[late])  # a tail after the click
    x = np.random.default_rng(4).standard_normal(rate * 2).astype(np.float32)
    plain, _ = augment.augment_view(x, rate, np.random.default_rng(9), rate)
    off, done_off = augment.augment_view(x, rate, np.random.default_rng(9), rate, room=False)
    assert np.array_equal(plain, off) and "rt60" not in done_off
    rooms = [augment.augment_view(x, rate, np.random.default_rng(s), rate, room=True)[1] for s in range(40)]
    share = np.mean(["rt60" in d for d in rooms])
    assert 0.15 < share < 0.7  # P_ROOM = 0.4


def test_balance_power_moves_from_equal_classes_to_clip_counts():
    classes = ["a"] * 9 + ["b"]
    packages = ["p"] * 6 + ["q"] * 3 + ["r"]
    equal = augment.balanced_weights(classes, packages)
    assert np.isclose(equal[:9].sum(), 0.5) and np.isclose(equal[9], 0.5)
    assert np.isclose(equal[:6].sum(), equal[6:9].sum())  # packages equal within a class
    assert np.allclose(augment.balanced_weights(classes, packages, 0.0), equal)
    sqrt = augment.balanced_weights(classes, packages, 0.5)
    assert np.isclose(sqrt[:9].sum(), 3 / 4)  # 9 ** 0.5 : 1 ** 0.5
    full = augment.balanced_weights(classes, packages, 1.0)
    assert np.isclose(full[:9].sum(), 0.9) and np.isclose(full[:6].sum(), full[6:9].sum())

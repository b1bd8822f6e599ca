"""clapkit.audio.fusion: int16 round trip, clip fitting, chunk choice and the batched feature builder."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from clapkit.audio import MelFrontend, chunk_starts, fit_to_clip, fuse_mel, prepare_batch, quantize_int16
from clapkit.config import AudioFrontendConfig
from clapkit.errors import ConfigError

LAION = AudioFrontendConfig()
CLIP = LAION.clip_samples


def _laion_int16(x: np.ndarray) -> np.ndarray:
    """LAION's float32_to_int16 followed by int16_to_float32 (training/data.py), written out."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0


def test_quantize_int16_values_and_backends():
    x = np.array([1.0, -1.0, 2.0, -3.0, 0.5, -0.5, 1e-5, -1e-4, 0.0], dtype=np.float32)
    expected = np.array([1, -1, 1, -1, 16383 / 32767, -16383 / 32767, 0, -3 / 32767, 0], dtype=np.float32)
    np.testing.assert_array_equal(quantize_int16(x), expected)
    y = np.random.default_rng(0).uniform(-1.3, 1.3, 200000).astype(np.float32)
    out = quantize_int16(y)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, _laion_int16(y).astype(np.float32))
    out_torch = quantize_int16(torch.from_numpy(y))
    assert out_torch.dtype == torch.float32
    np.testing.assert_array_equal(out_torch.numpy(), out)


def test_fit_to_clip_fillings():
    x = torch.tensor([[1.0, 2.0, 3.0, 0.0], [5.0, 6.0, 7.0, 8.0]])
    lengths = torch.tensor([3, 4])
    np.testing.assert_array_equal(fit_to_clip(x, lengths, 10, "repeatpad")[0], [1, 2, 3, 1, 2, 3, 1, 2, 3, 0])
    np.testing.assert_array_equal(fit_to_clip(x, lengths, 10, "repeatpad")[1], [5, 6, 7, 8, 5, 6, 7, 8, 0, 0])
    np.testing.assert_array_equal(fit_to_clip(x, lengths, 10, "pad")[0], [1, 2, 3, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(fit_to_clip(x, lengths, 10, "repeat")[0], [1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
    full = fit_to_clip(x, lengths, 4, "repeatpad")  # mixed: a full-length row is left as it is
    np.testing.assert_array_equal(full, [[1, 2, 3, 0], [5, 6, 7, 8]])
    with pytest.raises(ConfigError, match="filling"):
        fit_to_clip(x, lengths, 10, "loop")


def test_repeatpad_matches_laion_loop():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (1, 7, 479999, 240000, 160001, CLIP)]
    padded = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waves], batch_first=True)
    fitted = fit_to_clip(padded, torch.tensor([len(w) for w in waves]), CLIP, "repeatpad").numpy()
    for w, row in zip(waves, fitted, strict=True):
        repeated = np.tile(w, int(CLIP / len(w)))  # laion: audio_data.repeat(n_repeat), then zero-pad
        np.testing.assert_array_equal(row, np.pad(repeated, (0, CLIP - len(repeated))))


def test_chunk_starts_eval_is_deterministic():
    # 1501 valid starts split 501 / 500 / 500: front 0, middle 501 + 250, back the last start
    assert chunk_starts(2501, 1001) == (0, 751, 1500)
    assert chunk_starts(1002, 1001) == (0, 1, 0)  # 2 starts: back part empty -> [0]
    assert chunk_starts(1003, 1001) == (0, 1, 2)
    assert chunk_starts(2501, 1001, train=False, generator=np.random.default_rng(5)) == (0, 751, 1500)
    with pytest.raises(ValueError):
        chunk_starts(1001, 1001)


def test_chunk_starts_train_stay_in_thirds_and_are_seeded():
    parts = np.array_split(np.arange(2501 - 1001 + 1), 3)
    draws = [chunk_starts(2501, 1001, train=True, generator=np.random.default_rng(seed)) for seed in range(200)]
    for draw in draws:
        for start, part in zip(draw, parts, strict=True):
            assert part[0] <= start <= part[-1]
    assert len(set(draws)) > 150  # actually random
    g1, g2 = np.random.default_rng(42), np.random.default_rng(42)
    assert [chunk_starts(5000, 1001, train=True, generator=g1) for _ in range(5)] == [
        chunk_starts(5000, 1001, train=True, generator=g2) for _ in range(5)
    ]


def test_fuse_mel_on_synthetic_ramp():
    frames, chunk = 2501, 1001
    mel = torch.arange(frames, dtype=torch.float32)[:, None].expand(frames, 64).contiguous()
    fused, longer = fuse_mel(mel, chunk)
    assert longer and fused.shape == (4, chunk, 64)
    for channel, start in zip((1, 2, 3), (0, 751, 1500), strict=True):
        np.testing.assert_array_equal(fused[channel, :, 0].numpy(), np.arange(start, start + chunk))
    shrunk = fused[0, :, 0].numpy()
    assert np.all(np.diff(shrunk) > 0) and shrunk[0] < 5 and shrunk[-1] > frames - 6  # the whole mel, squeezed
    np.testing.assert_allclose(fused[0].std(dim=1).numpy(), 0.0, atol=1e-4)  # same along mels: a time-only resize
    copies, longer = fuse_mel(mel[:chunk], chunk)
    assert not longer and all(torch.equal(copies[i], mel[:chunk]) for i in range(4))


def test_short_audio_fusion_is_four_copies_of_the_htk_mel(make_noise):
    x = make_noise(3.0, seed=2)
    batch = prepare_batch([x], LAION, fusion=True)
    assert batch.features.shape == (1, 4, 1001, 64) and not bool(batch.is_longer[0])
    fitted = fit_to_clip(torch.from_numpy(quantize_int16(x))[None], torch.tensor([len(x)]), CLIP, "repeatpad")
    with torch.no_grad():
        expected = MelFrontend(LAION, fusion=True)(fitted)[0]
    for channel in range(4):
        torch.testing.assert_close(batch.features[0, channel], expected, rtol=0, atol=1e-5)


def test_corner_case_just_over_one_clip(make_noise):
    batch = prepare_batch([make_noise(10.0, seed=3)[:CLIP].tolist() + [0.1] * 100], LAION, fusion=True)
    assert not bool(batch.is_longer[0])
    assert all(torch.equal(batch.features[0, 0], batch.features[0, c]) for c in (1, 2, 3))


def test_long_non_fusion_crop(make_noise):
    x = make_noise(12.5, seed=4)
    frontend = MelFrontend(LAION)
    with torch.no_grad():
        batch = prepare_batch([x], LAION, fusion=False, frontend=frontend)
        start = frontend(torch.from_numpy(quantize_int16(x[:CLIP]))[None])
        assert bool(batch.is_longer[0]) and batch.features.shape == (1, 1, 1001, 64)
        torch.testing.assert_close(batch.features[:, 0], start, rtol=0, atol=1e-5)  # eval: the first clip
        offset = int(np.random.default_rng(9).integers(0, len(x) - CLIP + 1))
        trained = prepare_batch([x], LAION, fusion=False, train=True, generator=np.random.default_rng(9))
        crop = frontend(torch.from_numpy(quantize_int16(x[offset : offset + CLIP]))[None])
        torch.testing.assert_close(trained.features[:, 0], crop, rtol=0, atol=1e-5)


def test_long_fusion_uses_whole_mel_and_eval_chunks(make_noise):
    x = make_noise(25.0, seed=5)
    with torch.no_grad():
        batch = prepare_batch([x], LAION, fusion=True)
        mel = MelFrontend(LAION, fusion=True)(torch.from_numpy(quantize_int16(x))[None])[0]
    assert mel.shape[0] == 2501 and bool(batch.is_longer[0])
    for channel, start in zip((1, 2, 3), chunk_starts(2501, 1001), strict=True):
        torch.testing.assert_close(batch.features[0, channel], mel[start : start + 1001], rtol=0, atol=1e-5)


def test_train_is_seeded_and_random(make_noise):
    waves = [make_noise(25.0, seed=6), make_noise(14.0, seed=7)]
    a = prepare_batch(waves, LAION, fusion=True, train=True, generator=np.random.default_rng(1))
    b = prepare_batch(waves, LAION, fusion=True, train=True, generator=np.random.default_rng(1))
    c = prepare_batch(waves, LAION, fusion=True, train=True, generator=np.random.default_rng(2))
    assert torch.equal(a.features, b.features)
    assert not torch.equal(a.features, c.features)


def test_shapes_flags_and_batch_independence(make_noise, make_tone):
    waves = [make_noise(3.0, seed=8), make_noise(25.0, seed=9), make_tone(seconds=10.0), make_noise(0.01, seed=10)]
    for fusion, channels in ((False, 1), (True, 4)):
        batch = prepare_batch(waves, LAION, fusion=fusion)
        assert batch.features.shape == (4, channels, 1001, 64) and len(batch) == 4
        assert batch.is_longer.tolist() == [False, True, False, False]
        for i in range(len(waves)):
            alone = prepare_batch([waves[i]], LAION, fusion=fusion)
            torch.testing.assert_close(alone.features[0], batch.features[i], rtol=0, atol=1e-6)
    two_d = prepare_batch(np.stack([waves[2], waves[2]]), LAION, fusion=False)
    assert two_d.features.shape == (2, 1, 1001, 64)


def test_fillings_and_int16_switch(make_noise):
    x = make_noise(2.0, seed=11)
    frontend = MelFrontend(replace(LAION, filling="pad", int16_roundtrip=False))
    batch = prepare_batch([x], frontend.config, fusion=False, frontend=frontend)
    padded = torch.from_numpy(np.pad(x, (0, CLIP - len(x))))[None]
    with torch.no_grad():
        torch.testing.assert_close(batch.features[:, 0], frontend(padded), rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="frontend"):
        prepare_batch([x], LAION, fusion=True, frontend=MelFrontend(LAION))
    with pytest.raises(ConfigError, match="filling"):
        prepare_batch([x], replace(LAION, filling="loop"), fusion=False)

"""The default model's front end (aiSFX's): L1-normalised HTK mels, log10(1 + 1e4 mel) / 9.4578, peak normalisation."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from clapkit.audio.frontend import MelFrontend, mel_filterbank
from clapkit.audio.fusion import prepare_batch
from clapkit.errors import ConfigError
from clapkit.registry import get_config

FRONTEND = get_config("clapkit-default").frontend


def test_l1_filterbank_matches_librosa():
    ours = mel_filterbank(44100, 2048, 96, 0.0, 22050.0, scale="htk", norm="l1").numpy()
    theirs = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0).T
    assert np.abs(ours - theirs).max() < 3e-6  # librosa builds it in float32
    assert np.allclose(ours.sum(axis=0), 1.0, atol=1e-5)


def test_log_mel_matches_aisfx_librosa_recipe():
    """aiSFX's librosa spectrogram: melspectrogram(htk, norm=1, power 2, hop 1024, win 2048, reflect padding as in
    librosa 0.9), then log10(1e4 * S + 1), min-max scaled by its training range (0, 9.4578)."""
    rng = np.random.default_rng(0)
    y = (0.3 * rng.standard_normal(44100 * 2)).astype(np.float32)
    spectrogram = librosa.feature.melspectrogram(y=y, sr=44100, n_fft=2048, hop_length=1024, win_length=2048,
                                                 n_mels=96, fmin=0.0, fmax=22050.0, htk=True, norm=1.0, power=2.0,
                                                 pad_mode="reflect")
    expected = (np.log10(spectrogram * 10000.0 + 1) / 9.457798957824707).T
    got = MelFrontend(FRONTEND)(torch.from_numpy(y))[0].numpy()
    assert got.shape == expected.shape == (87, 96)
    assert np.abs(got - expected).max() < 1e-4


def test_peak_normalisation_makes_level_irrelevant():
    rng = np.random.default_rng(1)
    loud = (0.8 * rng.standard_normal(44100)).astype(np.float32)
    loud /= np.abs(loud).max()
    quiet = 0.01 * loud
    batch = prepare_batch([loud, quiet], FRONTEND, fusion=False)
    assert torch.allclose(batch.features[0], batch.features[1], atol=1e-5)
    silent = prepare_batch([np.zeros(44100, np.float32)], FRONTEND, fusion=False)
    assert torch.isfinite(silent.features).all() and float(silent.features.abs().max()) == 0.0


def test_bad_scaling_is_a_config_error():
    with pytest.raises(ConfigError, match="scaling"):
        MelFrontend(FRONTEND.__class__(**{**FRONTEND.__dict__, "scaling": "cube_root"}))
    with pytest.raises(ConfigError, match="log_gain"):
        MelFrontend(FRONTEND.__class__(**{**FRONTEND.__dict__, "log_gain": 0.0}))

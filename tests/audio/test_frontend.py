"""clapkit.audio.frontend: mel filterbanks and the log-mel front end against librosa.

torchlibrosa's front end itself (LAION, MS-CLAP) is compared at test time in tests/parity (``test_front_end_*``)."""

from __future__ import annotations

from dataclasses import replace

import librosa
import numpy as np
import pytest
import torch

from clapkit.audio import MelFrontend, mel_filterbank, power_to_db
from clapkit.config import AudioFrontendConfig
from clapkit.errors import AudioError, ConfigError

LAION = AudioFrontendConfig()


@pytest.mark.parametrize(
    ("rate", "n_fft", "n_mels", "f_min", "f_max"),
    [
        (48000, 1024, 64, 50.0, 14000.0),
        (44100, 2048, 128, 0.0, 22050.0),
        (32000, 1024, 64, 50.0, 14000.0),
        (16000, 400, 80, 0.0, 8000.0),
    ],
)
def test_slaney_filterbank_equals_librosa(rate, n_fft, n_mels, f_min, f_max):
    ours = mel_filterbank(rate, n_fft, n_mels, f_min, f_max, scale="slaney", norm="slaney")
    expected = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max).T
    assert ours.dtype == torch.float32 and ours.shape == (n_fft // 2 + 1, n_mels)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-8)
    plain = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, norm=None).T
    np.testing.assert_allclose(mel_filterbank(rate, n_fft, n_mels, f_min, f_max, "slaney", None), plain, atol=1e-6)


@pytest.mark.parametrize(
    ("rate", "n_fft", "n_mels", "f_min", "f_max"), [(48000, 1024, 64, 50.0, 14000.0), (44100, 2048, 128, 0.0, 22050.0)]
)
def test_htk_filterbank_matches_librosa_htk(rate, n_fft, n_mels, f_min, f_max):
    """HTK is computed in float32 as torchaudio does (exactly, checked against torchaudio in the reference env):
    it equals librosa's float64 htk=True bank up to float32 rounding (max 5.6e-6 / 1.1e-5 for these two)."""
    ours = mel_filterbank(rate, n_fft, n_mels, f_min, f_max, scale="htk", norm=None).numpy()
    expected = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=True, norm=None).T
    np.testing.assert_allclose(ours, expected, atol=2e-5)
    assert ours.max() <= 1.0 + 1e-6 and ours.max() > 0.9  # unnormalised triangles peak near 1
    slaney_norm = mel_filterbank(rate, n_fft, n_mels, f_min, f_max, scale="htk", norm="slaney").numpy()
    expected = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=True).T
    np.testing.assert_allclose(slaney_norm, expected, atol=2e-5 * expected.max())


def _librosa_logmel(x: np.ndarray, cfg: AudioFrontendConfig, htk: bool) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=x,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=cfg.n_mels,
        fmin=cfg.f_min,
        fmax=cfg.f_max,
        htk=htk,
        norm=None if htk else "slaney",
    )
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T


@pytest.mark.parametrize("fusion", [False, True])
def test_logmel_matches_librosa(make_noise, make_tone, fusion):
    x = np.stack(
        [make_noise(2.0, seed=5) + make_tone(3000.0, 2.0, amplitude=0.2), make_noise(2.0, amplitude=0.01, seed=6)]
    )
    with torch.no_grad():
        ours = MelFrontend(LAION, fusion=fusion)(torch.from_numpy(x)).numpy()
    assert ours.shape == (2, 96000 // 480 + 1, 64)
    for i in range(2):
        expected = _librosa_logmel(x[i], LAION, htk=fusion)
        np.testing.assert_allclose(ours[i], expected, atol=1e-3)  # measured: 2e-5 dB Slaney, 1.2e-4 dB HTK


def test_laion_logmel_10s_noise_matches_librosa():
    """A full 10 s LAION window of seed-0 noise: within 1e-4 dB of librosa's float64 Slaney log-mel (LAION's settings:
    fmin 50, fmax 14 kHz, reflect-padded centred frames, power 2, 10 log10 with amin 1e-10 and no top_db)."""
    wave = (0.1 * np.random.default_rng(0).standard_normal(480000)).astype(np.float32)
    with torch.no_grad():
        ours = MelFrontend(LAION)(torch.from_numpy(wave)[None])
    assert ours.shape == (1, 1001, 64)
    expected = _librosa_logmel(wave.astype(np.float64), LAION, htk=False)
    np.testing.assert_allclose(ours[0].numpy(), expected, atol=1e-4)


def test_frames_state_dict_and_device():
    frontend = MelFrontend(LAION)
    assert frontend.num_frames(480000) == 1001 == LAION.chunk_frames
    assert frontend(torch.zeros(2, 480000)).shape == (2, 1001, 64)
    assert frontend(torch.zeros(4800)).shape == (1, 11, 64)
    assert frontend.state_dict() == {} and list(frontend.parameters()) == []
    assert {name for name, _ in frontend.named_buffers()} == {"window", "filterbank"}
    double = frontend.to(torch.float64)
    assert double.filterbank.dtype == torch.float64
    no_center = MelFrontend(replace(LAION, center=False))
    assert no_center(torch.zeros(1, 480000)).shape[1] == no_center.num_frames(480000) == (480000 - 1024) // 480 + 1


def test_fusion_and_filterbank_overrides():
    assert torch.equal(
        MelFrontend(LAION, fusion=True).filterbank, mel_filterbank(48000, 1024, 64, 50, 14000, "htk", None)
    )
    assert torch.equal(MelFrontend(LAION).filterbank, mel_filterbank(48000, 1024, 64, 50, 14000, "slaney", "slaney"))
    ms2023 = replace(LAION, sample_rate=44100, filterbank_sample_rate=32000, f_max=8000.0, filterbank_f_max=14000.0)
    expected = librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000).T
    np.testing.assert_allclose(MelFrontend(ms2023).filterbank.numpy(), expected, atol=1e-8)


def test_power_to_db_and_top_db():
    power = torch.tensor([[[1.0, 1e-3, 0.0]], [[1e-4, 1e-6, 1e-12]]])
    np.testing.assert_allclose(
        power_to_db(power).numpy(), [[[0.0, -30.0, -100.0]], [[-40.0, -60.0, -100.0]]], atol=1e-5
    )
    floored = power_to_db(power, top_db=50.0).numpy()  # each item floored at its own max - 50
    np.testing.assert_allclose(floored, [[[0.0, -30.0, -50.0]], [[-40.0, -60.0, -90.0]]], atol=1e-5)
    np.testing.assert_allclose(power_to_db(torch.tensor([10.0]), ref=10.0).numpy(), [0.0], atol=1e-6)
    with torch.no_grad():
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 48000)).astype(np.float32))
        db = MelFrontend(replace(LAION, top_db=80.0))(x)
    assert float(db.max() - db.min()) <= 80.0 + 1e-4


def test_magnitude_power():
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 9600)).astype(np.float32))
    power2 = MelFrontend(LAION).power_spectrogram(x)
    power1 = MelFrontend(replace(LAION, power=1.0)).power_spectrogram(x)
    torch.testing.assert_close(power1.square(), power2, rtol=1e-4, atol=1e-6)


def test_errors():
    with pytest.raises(ConfigError, match="mel_scale"):
        MelFrontend(replace(LAION, mel_scale="bark"))
    with pytest.raises(ConfigError, match="win_length"):
        MelFrontend(replace(LAION, win_length=2048))
    with pytest.raises(ConfigError, match="f_max"):
        MelFrontend(replace(LAION, f_max=30000.0))
    with pytest.raises(ConfigError, match="mel scale"):
        mel_filterbank(48000, 1024, 64, 0, 8000, scale="mfcc")
    with pytest.raises(AudioError, match="too short"):
        MelFrontend(LAION)(torch.zeros(1, 100))
    with pytest.raises(AudioError, match="batch"):
        MelFrontend(LAION)(torch.zeros(1, 2, 4800))

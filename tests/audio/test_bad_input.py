"""Bad and unusual audio input: each case errors clearly, naming the input, or works."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from clapkit.audio import is_silent, load_audio, prepare_batch, prepare_waveform
from clapkit.config import AudioFrontendConfig
from clapkit.errors import AudioError


def _pcm16_wav(path, x, rate):
    sf.write(path, x, rate, subtype="PCM_16")
    return path.read_bytes()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="not found") as info:
        load_audio(path, 48000)
    assert info.value.source == str(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty") as info:
        load_audio(path, 48000)
    assert str(path) in str(info.value)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path, 48000)


def test_non_audio_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg: the error lists what libsndfile reads
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not a recording\n" * 20)
    with pytest.raises(AudioError, match="not an audio file") as info:
        load_audio(path, 48000)
    assert str(path) in str(info.value)
    damaged = tmp_path / "damaged.wav"  # a RIFF header libsndfile rejects: audio, but undecodable
    damaged.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + b"\x00" * 100)
    with pytest.raises(AudioError, match="cannot decode") as info:
        load_audio(damaged, 48000)
    assert str(damaged) in str(info.value) and "wav" in str(info.value)


def test_truncated_file_is_an_error_naming_both_durations(tmp_path, make_tone):
    """A WAV cut short of the length its header declares is refused (libsndfile alone would decode the rest)."""
    path = tmp_path / "cut.wav"
    data = _pcm16_wav(path, make_tone(seconds=1.0), 48000)
    path.write_bytes(data[: 44 + 2 * 20000])  # header + 20000 of 48000 samples
    with pytest.raises(AudioError, match=r"truncated: the header says 1.00 s, the file holds 0.42 s") as info:
        load_audio(path, 48000)
    assert info.value.source == str(path)


def test_header_only_file(tmp_path, make_tone):
    path = tmp_path / "header.wav"
    data = _pcm16_wav(path, make_tone(seconds=1.0), 48000)
    path.write_bytes(data[:44])
    with pytest.raises(AudioError, match="truncated: the header says 1.00 s, the file holds 0.00 s") as info:
        load_audio(path, 48000)
    assert info.value.source == str(path)
    zero = tmp_path / "zero.wav"  # a complete file of 0 samples
    sf.write(zero, np.zeros(0, dtype=np.float32), 48000)
    with pytest.raises(AudioError, match="no audio samples") as info:
        load_audio(zero, 48000)
    assert info.value.source == str(zero)


def test_garbage_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    path = tmp_path / "garbage.flac"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError, match="not an audio file"):
        load_audio(path, 48000)


def test_nan_samples_in_file_and_array(tmp_path, make_tone):
    x = make_tone(seconds=0.5)
    x[1234] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 48000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN") as info:
        load_audio(path, 48000)
    assert "sample 1234" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(AudioError, match=r"waveforms\[2\].*NaN"):
        prepare_waveform(x, 48000, 48000, "waveforms[2]")
    x[1234] = np.inf
    with pytest.raises(AudioError, match="Inf"):
        prepare_waveform(x, 48000, 48000, "clip")
    with pytest.raises(AudioError, match=r"waveforms\[0\]"):
        prepare_batch([x], AudioFrontendConfig(), fusion=False)


def test_zero_length_array():
    with pytest.raises(AudioError, match="no samples") as info:
        prepare_waveform(np.zeros(0, dtype=np.float32), 48000, 48000, "waveforms[0]")
    assert info.value.source == "waveforms[0]"
    with pytest.raises(AudioError, match="no samples"):
        prepare_waveform(np.zeros((2, 0), dtype=np.float32), 48000, 48000, "x")
    with pytest.raises(AudioError, match=r"waveforms\[1\]"):
        prepare_batch([np.ones(10), np.zeros(0)], AudioFrontendConfig(), fusion=False)


@pytest.mark.parametrize("rate", [0, -16000, float("nan"), "fast"])
def test_absurd_rates(rate, make_tone):
    with pytest.raises(AudioError, match="sample rate") as info:
        prepare_waveform(make_tone(), rate, 48000, "clip.npy")
    assert info.value.source == "clip.npy"


def test_bad_shapes(make_tone):
    with pytest.raises(AudioError, match="1-D"):
        prepare_waveform(np.zeros((2, 3, 4)), 48000, 48000, "x")
    with pytest.raises(AudioError, match="channels"):
        prepare_waveform(np.zeros((40, 48000)), 48000, 48000, "x")  # 40 "channels" is a layout mistake
    with pytest.raises(AudioError, match="dtype"):
        prepare_waveform(np.array(["a", "b"]), 48000, 48000, "x")


def test_six_channel_audio_is_averaged(tmp_path, make_tone):
    channels = np.stack([make_tone(200.0 * (c + 1), 0.5, 48000, 0.1) for c in range(6)])
    path = tmp_path / "surround.wav"
    sf.write(path, channels.T, 48000, subtype="FLOAT")
    expected = channels.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(load_audio(path, 48000), expected, atol=1e-7)
    np.testing.assert_allclose(prepare_waveform(channels, 48000, 48000, "x"), expected, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 192000])
def test_extreme_rates_are_resampled(tmp_path, make_tone, rate):
    x = make_tone(1000.0, 0.5, rate)
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    for y in (load_audio(path, 48000), prepare_waveform(x, rate, 48000, "x")):
        assert y.dtype == np.float32 and len(y) == 24000
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        assert abs(np.fft.rfftfreq(len(y), 1 / 48000)[spectrum.argmax()] - 1000.0) < 4.0
        assert 0.45 < np.abs(y[2000:-2000]).max() < 0.55


def test_silent_audio_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(4800, dtype=np.float32), 48000)
    y = load_audio(path, 48000)
    assert is_silent(y)
    batch = prepare_batch([y], AudioFrontendConfig(), fusion=False)
    assert np.isfinite(batch.features.numpy()).all()
    assert float(batch.features.max()) == pytest.approx(-100.0)  # 10*log10(amin): the floor, no error

"""clapkit.audio.io: decoding, channel averaging, resampling, silence and block-streamed windows."""

from __future__ import annotations

import sys
import textwrap

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from clapkit.audio import is_silent, load_audio, prepare_waveform, stream_windows
from clapkit.errors import AudioError


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def test_wav_float_round_trip_is_exact(tmp_path, make_noise):
    x = make_noise(0.5)
    path = tmp_path / "a.wav"
    sf.write(path, x, 48000, subtype="FLOAT")
    y = load_audio(path, 48000)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize(
    ("ext", "fmt", "subtype", "tol"),
    [
        ("flac", "FLAC", "PCM_16", 1e-4),
        ("wav", "WAV", "PCM_16", 1e-4),
        ("ogg", "OGG", "VORBIS", None),
        ("mp3", "MP3", "MPEG_LAYER_III", None),
    ],
)
def test_formats_decode(tmp_path, make_tone, ext, fmt, subtype, tol):
    x = make_tone(440.0, 1.0, 48000)
    path = tmp_path / f"tone.{ext}"
    sf.write(path, x, 48000, format=fmt, subtype=subtype)
    y = load_audio(path, 48000)
    assert y.dtype == np.float32 and y.ndim == 1
    if tol is not None:
        np.testing.assert_allclose(y, x, atol=tol)
    else:  # lossy codecs: same length up to codec padding, same pitch
        assert abs(len(y) - len(x)) < 4096
        assert abs(_peak_hz(y[:48000], 48000) - 440.0) < 2.0


def test_stereo_is_averaged_not_concatenated(tmp_path, make_tone, make_noise):
    left, right = make_tone(300.0, 0.5), make_noise(0.5)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 48000, subtype="FLOAT")
    y = load_audio(path, 48000)
    assert y.shape == left.shape
    np.testing.assert_allclose(y, (left.astype(np.float64) + right) / 2, atol=1e-7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # librosa imports audioread
def test_resampling_matches_librosa_load(tmp_path, make_tone):
    """LAION loads files with librosa.load(sr=48000) (soxr_hq): ours must give the same samples.

    librosa then pads to ceil(n * 48000 / 44100) computed in floating point (48001 here, one trailing zero); we keep
    soxr's exact length.
    """
    x = np.stack([make_tone(1000.0, 1.0, 44100), make_tone(2000.0, 1.0, 44100, 0.2)], axis=1)
    path = tmp_path / "b.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    y = load_audio(path, 48000)
    expected, _ = librosa.load(path, sr=48000, mono=True)
    assert y.shape == (48000,) and expected.shape == (48001,) and expected[-1] == 0
    np.testing.assert_allclose(y, expected[:48000], atol=1e-6)
    assert abs(_peak_hz(y, 48000) - 1000.0) < 2.0


def test_prepare_waveform_layouts_and_types(make_tone):
    mono = make_tone(440.0, 0.25, 16000)
    two = np.stack([mono, -mono])
    np.testing.assert_allclose(prepare_waveform(two, 16000, 16000, "x"), 0.0, atol=1e-7)
    np.testing.assert_array_equal(prepare_waveform(torch.from_numpy(mono), 16000, 16000), mono)
    pcm = (mono * 32767).astype(np.int16)
    np.testing.assert_allclose(prepare_waveform(pcm, 16000, 16000), pcm / 32768.0, atol=1e-7)
    y = prepare_waveform(mono.astype(np.float64), 16000, 48000)
    assert y.dtype == np.float32 and len(y) == 3 * len(mono)
    with pytest.raises(AudioError, match=r"array\.T"):
        prepare_waveform(two.T, 16000, 16000, "clip.npy")


def test_is_silent(make_tone):
    assert is_silent(np.zeros(1000, dtype=np.float32))
    assert is_silent(make_tone(amplitude=1e-6))  # -123 dBFS RMS
    assert not is_silent(make_tone(amplitude=1e-3))
    assert not is_silent(torch.from_numpy(make_tone()))
    assert not is_silent(make_tone(amplitude=1e-4), threshold_db=-90) and is_silent(make_tone(amplitude=1e-4), -60)


def _windows_equal_slices(path, rate, window, hop, atol):
    whole = load_audio(path, rate)
    starts, count = [], 0
    for start, w in stream_windows(path, rate, window, hop):
        expected = whole[start : start + window]
        assert w.shape == expected.shape, (start, w.shape, expected.shape)
        if atol == 0:
            np.testing.assert_array_equal(w, expected)
        else:
            np.testing.assert_allclose(w, expected, atol=atol)
        starts.append(start)
        count += 1
    return whole, starts


def test_stream_windows_exact_at_equal_rate(tmp_path, make_noise):
    rate = 16000
    x = np.stack([make_noise(180.0, rate, seed=1), make_noise(180.0, rate, seed=2)], axis=1)  # 3 minutes, stereo
    path = tmp_path / "long.wav"
    sf.write(path, x, rate, subtype="PCM_16")
    whole, starts = _windows_equal_slices(path, rate, window=10 * rate + 7, hop=7 * rate, atol=0)
    assert starts == list(range(0, len(whole), 7 * rate))[: len(starts)]
    last_start = starts[-1]
    assert last_start + 10 * rate + 7 >= len(whole) > last_start  # the tail is covered, nothing beyond the end


def test_stream_windows_resampled_match_whole_file(tmp_path, make_noise, make_tone):
    x = make_noise(120.0, 44100, seed=3) + make_tone(440.0, 120.0, 44100, 0.3)  # 2 minutes at 44.1 kHz
    path = tmp_path / "long44.flac"
    sf.write(path, x, 44100)
    whole, starts = _windows_equal_slices(path, 48000, window=480000, hop=240000, atol=1e-5)
    assert starts[-1] + 480000 >= len(whole)
    assert abs(len(whole) - round(len(x) * 48000 / 44100)) <= 1


def test_stream_windows_short_file_and_gaps(tmp_path, make_tone):
    path = tmp_path / "short.wav"
    sf.write(path, make_tone(seconds=1.0, sample_rate=8000), 8000, subtype="FLOAT")
    windows = list(stream_windows(path, 8000, 16000, 8000))
    assert [(s, len(w)) for s, w in windows] == [(0, 8000)]
    gaps = list(stream_windows(path, 8000, 1000, 3000))  # hop > window: windows at 0, 3000, 6000
    assert [(s, len(w)) for s, w in gaps] == [(0, 1000), (3000, 1000), (6000, 1000)]
    exact = list(stream_windows(path, 8000, 4000, 4000))  # tiles the file exactly: no extra tail window
    assert [(s, len(w)) for s, w in exact] == [(0, 4000), (4000, 4000)]
    with pytest.raises(AudioError, match="window"):
        stream_windows(path, 8000, 0, 100)
    with pytest.raises(AudioError, match="not found"):
        stream_windows(tmp_path / "missing.wav", 8000, 100, 100)


def _fake_ffmpeg(bin_dir, body: str) -> None:
    script = bin_dir / "ffmpeg"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)


def test_ffmpeg_fallback_decodes_what_libsndfile_cannot(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_ffmpeg(
        bin_dir,
        """
        import sys
        import numpy as np
        import soundfile as sf
        args = sys.argv[1:]
        assert open(args[args.index("-i") + 1], "rb").read(4) == b"M4A?"
        t = np.arange(22050) / 22050
        left = 0.5 * np.sin(2 * np.pi * 441 * t)
        sf.write(args[-1], np.stack([left, left], axis=1), 22050, subtype="FLOAT", format="WAV")
        """,
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    song = tmp_path / "song.m4a"
    song.write_bytes(b"M4A?" + bytes(range(256)) * 8)
    y = load_audio(song, 44100)
    assert y.shape == (44100,)
    assert abs(_peak_hz(y, 44100) - 441.0) < 2.0
    windows = list(stream_windows(song, 44100, 20000, 20000))
    assert [len(w) for _, w in windows] == [20000, 20000, 4100]


def test_ffmpeg_failure_and_absence_are_clear(tmp_path, monkeypatch):
    song = tmp_path / "song.m4a"
    song.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"not really audio" * 64)  # an MP4 header libsndfile cannot read
    empty_bin = tmp_path / "empty"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    with pytest.raises(AudioError, match="Installing ffmpeg") as info:
        load_audio(song, 48000)
    assert info.value.source == str(song) and "flac" in str(info.value) and "mp3" in str(info.value)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_ffmpeg(bin_dir, 'import sys\nsys.stderr.write("Invalid data found when processing input\\n")\nsys.exit(1)\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(AudioError, match="Invalid data found") as info:
        load_audio(song, 48000)
    assert str(song) in str(info.value)

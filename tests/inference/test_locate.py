"""Long audio: streamed windows, time ranges, the ``clapkit locate`` command and memory on a 2-hour file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from clapkit import locate as locate_module
from clapkit.audio.io import load_audio, stream_windows
from clapkit.cli import main
from clapkit.locate import TimeRange, adaptive_threshold, embed_windows, format_time, locate, time_ranges
from tests.audio_fixtures import clip, write_audio
from tests.small_models import MICRO_RATE


def _collect(batches):
    batches = list(batches)
    return tuple(np.concatenate([getattr(b, name) for b in batches]) for name in ("starts", "ends", "embeddings"))


def test_default_windows_are_one_clip_with_half_overlap(tmp_path, micro_model):
    write_audio(tmp_path / "long.wav", np.concatenate([clip(12.0, 1), clip(13.0, 2)]), MICRO_RATE)
    starts, ends, embeddings = _collect(embed_windows(micro_model, tmp_path / "long.wav", batch_size=3))
    np.testing.assert_allclose(starts, [0, 5, 10, 15])
    np.testing.assert_allclose(ends, [10, 15, 20, 25])
    waveform = load_audio(tmp_path / "long.wav", MICRO_RATE)
    clip_samples = micro_model.config.frontend.clip_samples
    expected = micro_model.embed_waveforms([waveform[round(s * MICRO_RATE) :][:clip_samples] for s in starts], 1)
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    # custom window and hop; the rest of the file becomes a last, shorter window
    starts, ends, _ = _collect(embed_windows(micro_model, tmp_path / "long.wav", window_seconds=10, hop_seconds=8))
    np.testing.assert_allclose(starts, [0, 8, 16])
    np.testing.assert_allclose(ends, [10, 18, 25])
    # in-memory audio gives the same windows as the file
    starts, _, from_array = _collect(embed_windows(micro_model, waveform, sample_rate=MICRO_RATE, batch_size=2))
    np.testing.assert_allclose(from_array, expected, atol=1e-5)


def test_stopping_early_stops_reading_the_file(tmp_path, micro_model, monkeypatch):
    write_audio(tmp_path / "long.wav", clip(120.0, 1), MICRO_RATE)
    read = []

    def counted(*args):
        for item in stream_windows(*args):
            read.append(item[0])
            yield item

    monkeypatch.setattr(locate_module, "stream_windows", counted)
    windows = embed_windows(
        micro_model, tmp_path / "long.wav", window_seconds=1, hop_seconds=1, batch_size=2, prefetch=1
    )
    assert len(next(windows).starts) == 2
    windows.close()
    assert not [t for t in threading.enumerate() if t.name == "clapkit-stream"]
    assert 2 <= len(read) <= 8  # a few batches ahead at most, not the 120 windows of the file


def test_time_ranges_merge_overlapping_windows():
    starts, ends = np.arange(0, 50, 5.0), np.arange(0, 50, 5.0) + 10
    scores = np.array([0.1, 0.5, 0.6, 0.2, 0.1, 0.1, 0.1, 0.7, 0.1, 0.3])
    assert time_ranges(starts, ends, scores, 0.5) == [TimeRange(5, 20, pytest.approx(0.6)), TimeRange(35, 45, 0.7)]
    assert time_ranges(starts, ends, scores, 0.3)[-1] == TimeRange(35, 55, 0.7)  # 40-50 and 45-55 touch: joined
    assert time_ranges(starts, ends, scores, 0.8) == []
    assert adaptive_threshold(np.full(5, 0.3)) == np.inf  # nothing stands out
    assert adaptive_threshold(scores) == pytest.approx(scores.mean() + 2 * scores.std())
    assert format_time(3725.46) == "1:02:05.5"


def test_locate_scores_every_window_against_the_text(tmp_path, micro_model):
    write_audio(tmp_path / "rec.wav", np.concatenate([clip(4.0, 1), clip(4.0, 6), clip(4.0, 2)]), MICRO_RATE)
    result = locate(micro_model, tmp_path / "rec.wav", "glass breaking", window_seconds=2, hop_seconds=1)
    _, _, embeddings = _collect(embed_windows(micro_model, tmp_path / "rec.wav", window_seconds=2, hop_seconds=1))
    text = micro_model.embed_text(["glass breaking"])[0]
    np.testing.assert_allclose(result.scores, embeddings @ text, atol=1e-5)
    assert len(result.scores) == 11 and result.threshold == pytest.approx(adaptive_threshold(result.scores))
    best = int(np.argmax(result.scores))
    exact = locate(micro_model, tmp_path / "rec.wav", "glass breaking", window_seconds=2, hop_seconds=1,
                   threshold=float(result.scores[best]))  # fmt: skip
    assert exact.ranges == [TimeRange(best, best + 2, pytest.approx(float(result.scores[best])))]


def test_locate_command_prints_ranges_and_writes_a_plot(tmp_path, micro_model_dir, capsys):
    write_audio(tmp_path / "rec.flac", np.concatenate([clip(6.0, 1), clip(6.0, 3)]), MICRO_RATE)
    args = ["locate", str(tmp_path / "rec.flac"), "a dog barking", "--model", str(micro_model_dir), "--window", "2"]
    assert main([*args, "--format", "json", "--threshold", "-1", "--plot", str(tmp_path / "plot.png")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["windows"]) == 11 and document["threshold"] == -1
    assert document["ranges"] == [{"start": 0.0, "end": 12.0, "score": max(w["score"] for w in document["windows"])}]
    png = (tmp_path / "plot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["start", "end", "score"] and "threshold" in captured.err
    assert main(["locate", str(tmp_path / "missing.wav"), "x", "--model", str(micro_model_dir)]) == 2
    assert "missing.wav: file not found" in capsys.readouterr().err


_MEASURE = """
import resource, sys
from clapkit.cli import main
code = main(["locate", sys.argv[1], "glass breaking", "--model", sys.argv[2], "--format", "csv", "--threshold", "2",
             "--quiet"])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _peak_rss_of_locate(path, model_dir):
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(model_dir)], capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    windows = int(done.stderr.split(": ")[1].split(" windows")[0])
    return int(done.stderr.split("PEAK_RSS_KB ")[1].split()[0]) * 1024, windows


def _write_long_file(path, seconds, rate=8000):
    """A recording written minute by minute (never whole in memory): noise with a tone that changes each minute."""
    minute = np.arange(60 * rate) / rate
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for m in range(int(seconds // 60)):
            f.write(0.2 * np.sin(2 * np.pi * (100 + 10 * (m % 30)) * minute) + 0.02 * rng.standard_normal(minute.size))


def test_a_two_hour_file_is_located_in_bounded_memory(tmp_path, micro_model_dir):
    _write_long_file(tmp_path / "short.wav", 60)
    _write_long_file(tmp_path / "two-hours.wav", 2 * 3600)
    decoded_bytes = 2 * 3600 * MICRO_RATE * 4  # float32 at the model's rate: 460.8 MB
    short_peak, short_windows = _peak_rss_of_locate(tmp_path / "short.wav", micro_model_dir)
    long_peak, long_windows = _peak_rss_of_locate(tmp_path / "two-hours.wav", micro_model_dir)
    assert (short_windows, long_windows) == (11, 2 * 3600 // 5 - 1)
    growth = long_peak - short_peak
    print(f"peak RSS: 1 min {short_peak / 2**20:.0f} MiB, 2 h {long_peak / 2**20:.0f} MiB, growth "
          f"{growth / 2**20:.1f} MiB; the decoded file would be {decoded_bytes / 2**20:.0f} MiB")  # fmt: skip
    assert growth < decoded_bytes / 10

"""Decode limits (clapkit.harvest.decode): field recordings keep more segments than speech and music, and a cached
decode made under other limits is redone only when the new limits would change it."""

from __future__ import annotations

import numpy as np
import soundfile

from clapkit.harvest.decode import MAX_SEGMENTS, MAX_SEGMENTS_FIELD, MIN_SECONDS, decode_task, segments, stale


def _task(tmp_path, audio_path, **limits) -> dict:
    return {"package": "p", "source_path": "x/wind.ogg", "file": str(audio_path), "member": "",
            "out_dir": str(tmp_path / "out"), "clip_stem": "abc", "max_seconds": 0.0,
            "max_segments": MAX_SEGMENTS_FIELD, "min_seconds": MIN_SECONDS, **limits}


def test_segments_cap():
    x = np.ones(48000 * 95, dtype=np.float32)
    assert len(segments(x)) == MAX_SEGMENTS == 3
    assert [len(s) for s in segments(x, 9)] == [480000] * 9
    assert len(segments(np.ones(48000 * 15, dtype=np.float32), 9)) == 1  # up to 20 s stays whole


def test_long_field_recording_and_short_sounds(tmp_path):
    rng = np.random.default_rng(0)
    long = tmp_path / "wind.wav"
    soundfile.write(long, 0.3 * rng.standard_normal(48000 * 51).astype(np.float32), 48000)
    record = decode_task(_task(tmp_path, long))
    assert [c["segment"] for c in record["clips"]] == [0, 1, 2, 3, 4] and record["max_segments"] == 9  # 1 s tail: off
    speech = decode_task(_task(tmp_path, long, max_segments=MAX_SEGMENTS))
    assert len(speech["clips"]) == 3
    short = tmp_path / "clap.wav"
    clap = np.zeros(48000, dtype=np.float32)
    clap[:9600] = 0.5 * rng.standard_normal(9600)  # 0.2 s (+ 50 ms kept after it)
    soundfile.write(short, clap, 48000)
    kept = decode_task(_task(tmp_path, short))
    assert len(kept["clips"]) == 1 and 0.2 <= kept["clips"][0]["duration_s"] <= 0.26
    assert decode_task(_task(tmp_path, short, min_seconds=0.3))["skip"].startswith("too short")


def test_stale_records():
    task = {"max_segments": 9, "min_seconds": 0.2, "max_seconds": 0.0}
    v2_cut = {"clips": [{}, {}, {}], "skip": ""}  # corpus v2: cut at 3 segments, limits not recorded
    assert stale(v2_cut, task) and not stale(v2_cut, {**task, "max_segments": 3})
    assert not stale({"clips": [{}, {}], "skip": ""}, task)  # a 25 s file had only two segments anyway
    assert stale({"clips": [], "skip": "too short after trimming silence (0.25 s < 0.3 s)"}, task)
    assert not stale({"clips": [], "skip": "too short after trimming silence (0.15 s < 0.2 s)",
                      "min_seconds": 0.2}, task)
    assert stale({"clips": [], "skip": "longer than 60 s (75 s): music track"}, task)
    assert not stale({"clips": [], "skip": "longer than 60 s (75 s): music track"}, {**task, "max_seconds": 60.0})
    assert not stale({"clips": [], "skip": "silent"}, task)

"""Input discovery (files, folders, patterns, list files) and which formats decode."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from clapkit import ClapkitError
from clapkit import inputs as inputs_module
from clapkit.inputs import decodable_formats, discover_inputs, probe_duration
from clapkit.jobs import embed_files
from tests.audio_fixtures import clip, write_audio, write_clips
from tests.small_models import MICRO_RATE


def _tree(root):
    """root/a.wav, root/B.WAV, root/notes.txt, root/.hidden.wav, root/sub/deep/c.flac, root/sub/d.ogg, root/x.mp3"""
    write_clips(root, 1, prefix="a")
    write_audio(root / "B.WAV", clip(0.5, 1), MICRO_RATE)
    (root / "notes.txt").write_text("not audio")
    write_audio(root / ".hidden.wav", clip(0.5, 2), MICRO_RATE)
    write_clips(root / "sub" / "deep", 1, ext="flac", prefix="c")
    write_clips(root / "sub", 1, ext="ogg", prefix="d")
    write_clips(root, 1, ext="mp3", prefix="x")
    return root


def test_folders_are_searched_recursively_by_extension(tmp_path):
    root = _tree(tmp_path / "data")
    found = discover_inputs([root])
    names = [os.path.relpath(p, root) for p in found.paths]
    assert names == sorted(names)
    assert set(names) == {"a-000.wav", "B.WAV", "sub/deep/c-000.flac", "sub/d-000.ogg", "x-000.mp3"}
    assert all(os.path.isabs(p) for p in found.paths) and found.failures == []
    shallow = discover_inputs([root], recursive=False)
    assert {os.path.basename(p) for p in shallow.paths} == {"a-000.wav", "B.WAV", "x-000.mp3"}
    only_flac = discover_inputs([root], extensions=["flac"])
    assert [os.path.basename(p) for p in only_flac.paths] == ["c-000.flac"]


def test_files_patterns_and_list_files_are_merged_and_deduplicated(tmp_path, monkeypatch):
    root = _tree(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "lists" / "files.txt"
    listing.parent.mkdir()
    listing.write_text("# my files\n\n../data/a-000.wav\n../data/sub/**/*.flac\n" + str(root / "notes.txt") + "\n")
    found = discover_inputs(["data/./a-000.wav", "data/*.mp3", "data/sub/../B.WAV"], files_from=listing)
    assert [os.path.relpath(p, root) for p in found.paths] == [
        "B.WAV", "a-000.wav", "notes.txt", "sub/deep/c-000.flac", "x-000.mp3"]  # fmt: skip
    assert found.failures == []  # an explicitly named file is taken whatever its extension


def test_missing_inputs_become_failures_not_exceptions(tmp_path):
    root = _tree(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    found = discover_inputs([root / "a-000.wav", tmp_path / "nope.wav", str(root / "*.aiff"), tmp_path / "empty"])
    assert [os.path.basename(p) for p in found.paths] == ["a-000.wav"]
    reasons = {os.path.basename(f.source): f.reason for f in found.failures}
    assert "not found" in reasons["nope.wav"]
    assert "matched no audio files" in reasons["*.aiff"]
    assert "no audio files" in reasons["empty"]
    with pytest.raises(ClapkitError, match=r"missing\.txt: list of files not found"):
        discover_inputs([], files_from=tmp_path / "missing.txt")


def test_every_libsndfile_format_decodes_and_embeds(tmp_path, micro_model):
    tone = clip(1.5, 3)
    for ext, kwargs in {"wav": {}, "flac": {}, "ogg": {}, "mp3": {}, "aiff": {}, "caf": {},
                        "opus": {"format": "OGG", "subtype": "OPUS"}}.items():  # fmt: skip
        write_audio(tmp_path / f"tone.{ext}", tone, 48000 if ext == "opus" else MICRO_RATE, **kwargs)
    result = embed_files(micro_model, [tmp_path])
    assert result.failures == []
    assert sorted(os.path.basename(p) for p in result.paths) == sorted(
        f"tone.{e}" for e in ("wav", "flac", "ogg", "mp3", "aiff", "caf", "opus"))  # fmt: skip
    wav = result.embeddings[result.paths.index(str(tmp_path / "tone.wav"))]
    flac = result.embeddings[result.paths.index(str(tmp_path / "tone.flac"))]
    np.testing.assert_allclose(wav, flac, atol=1e-4)  # lossless formats give the same embedding


def test_undecodable_files_name_the_decoder_they_need(tmp_path, micro_model):
    (tmp_path / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A not really")
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    result = embed_files(micro_model, [tmp_path])
    reasons = {os.path.basename(f.source): f.reason for f in result.failures}
    assert result.paths == [] and set(reasons) == {"song.m4a", "broken.wav"}
    assert "ffmpeg" in reasons["song.m4a"] and "decode" in reasons["broken.wav"]


def test_decodable_formats_depend_on_ffmpeg(monkeypatch):
    monkeypatch.setattr(inputs_module.shutil, "which", lambda name: None)
    without = decodable_formats()
    assert without[".wav"] == without[".flac"] == without[".ogg"] == "libsndfile"
    assert without[".m4a"].startswith("unavailable") and "ffmpeg" in without[".m4a"]
    monkeypatch.setattr(inputs_module.shutil, "which", lambda name: "/usr/bin/ffmpeg")
    assert decodable_formats()[".m4a"] == "ffmpeg"


def test_probe_duration_reads_headers(tmp_path):
    write_clips(tmp_path, 2, seconds=(2.5, 0.25))
    assert probe_duration(str(tmp_path / "clip-000.wav")) == pytest.approx(2.5)
    assert probe_duration(str(tmp_path / "clip-001.wav")) == pytest.approx(0.25)
    (tmp_path / "junk.wav").write_bytes(b"junk")
    assert math.isnan(probe_duration(str(tmp_path / "junk.wav")))

"""The harvester on two tiny Debian packages built at test time with dpkg-deb --build: loose WAV/OGG, a zip of
audio, a DEP-5 copyright file (and a package whose doc directory is a symlink to the other's), a music file, a
corrupt file, a silent one, a duplicate across packages, an unmappable name and a long ambient loop."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from clapkit.harvest import harvest

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: testgame

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: data/sounds/rain*
Copyright: 2021 Someone Else
License: CC0-1.0

License: GPL-2+
 This program is free software; you can redistribute it and/or modify it.

License: CC0-1.0
 No rights reserved.
"""


def trigram_embedder(texts):
    """A tiny deterministic stand-in for MiniLM: normalised bags of character trigrams."""
    rows = np.zeros((len(texts), 512))
    for i, text in enumerate(texts):
        padded = f"  {text.lower()} "
        for j in range(len(padded) - 2):
            rows[i, int(hashlib.md5(padded[j : j + 3].encode()).hexdigest(), 16) % 512] += 1
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def _sound(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _write(path: Path, audio: np.ndarray, rate: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, format=fmt)


def _control(root: Path, name: str) -> None:
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0-1\nSection: games\nPriority: optional\nArchitecture: all\n"
        "Maintainer: Test <test@example.org>\nDescription: test sounds\n test package\n")


def _build(tree: Path, out: Path) -> None:
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)], check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("debs")
    a = base / "tree-a"
    _control(a, "clapkit-test-sounds")
    game = a / "usr/share/games/testgame"
    _write(game / "sounds/DogBark01.wav", _sound(0.8, 22050, 1), 22050)
    _write(game / "sounds/rain_loop.ogg", _sound(21.0, 16000, 2), 16000, "OGG")
    _write(game / "music/theme.ogg", _sound(2.0, 16000, 3), 16000, "OGG")
    _write(game / "sounds/zzqx.wav", _sound(0.5, 16000, 4), 16000)
    _write(game / "sounds/cough_quiet.wav", np.zeros(16000, dtype=np.float32), 16000)
    _write(game / "sounds/typewritr.wav", _sound(0.6, 16000, 7), 16000)
    (game / "sounds/door_broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    members = io.BytesIO()
    with zipfile.ZipFile(members, "w") as archive:
        for name, seed, fmt in (("sounds/door_knock.wav", 5, "WAV"), ("sounds/cat_meow.flac", 6, "FLAC")):
            buffer = io.BytesIO()
            soundfile.write(buffer, _sound(0.7, 44100, seed), 44100, format=fmt)
            archive.writestr(name, buffer.getvalue())
    game.joinpath("base.pk3").write_bytes(members.getvalue())
    doc = a / "usr/share/doc/clapkit-test-sounds"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    b = base / "tree-b"
    _control(b, "clapkit-test-theme")
    _write(b / "usr/share/sounds/testtheme/dog_bark.wav", _sound(0.8, 22050, 1), 22050)  # same audio as A's
    _write(b / "usr/share/sounds/testtheme/FootstepsGravel.wav", _sound(1.2, 48000, 8), 48000)
    (b / "usr/share/doc").mkdir(parents=True)
    os.symlink("clapkit-test-sounds", b / "usr/share/doc/clapkit-test-theme")
    out = base / "debs"
    out.mkdir()
    _build(a, out / "clapkit-test-sounds_1.0-1_all.deb")
    _build(b, out / "clapkit-test-theme_1.0-1_all.deb")
    return out


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_harvest_labels_skips_dedup_and_rerun(debs, tmp_path):
    out, work = tmp_path / "corpus", tmp_path / "work"
    result = harvest([debs], out, work=work, embedder=trigram_embedder, workers=1, progress=False,
                     minilm_threshold=0.7)
    meta = {r["source_path"].split("!")[-1].split("/")[-1]: r for r in _rows(out / "meta.csv")}
    assert set(meta) == {"DogBark01.wav", "rain_loop.ogg#segment0", "rain_loop.ogg#segment1", "door_knock.wav",
                         "cat_meow.flac", "typewritr.wav", "FootstepsGravel.wav"}
    assert result.clips == 7
    dog = meta["DogBark01.wav"]
    assert dog["labels"].split(";")[0] == "Bark" == dog["class"] and "Dog" in dog["labels"].split(";")
    assert "bark->Bark [name" in dog["evidence"] and dog["keywords"] == "dog bark"
    assert dog["top_category"] == "Animal" and "dog" in dog["caption"].lower()
    assert dog["licence"] == "GPL-2+" and dog["source_package"] == "clapkit-test-sounds"
    assert meta["rain_loop.ogg#segment0"]["licence"] == "CC0-1.0"  # the Files: data/sounds/rain* paragraph
    assert meta["rain_loop.ogg#segment0"]["labels"].startswith("Rain")
    assert float(meta["rain_loop.ogg#segment0"]["duration_s"]) == pytest.approx(10.0, abs=0.01)
    knock = meta["door_knock.wav"]
    assert knock["source_path"] == "usr/share/games/testgame/base.pk3!sounds/door_knock.wav"
    assert knock["labels"].split(";")[0] == "Knock" and "Door" in knock["labels"]
    assert meta["cat_meow.flac"]["labels"].split(";")[0] == "Meow"
    assert "typewritr->Typewriter [minilm 0.7" in meta["typewritr.wav"]["evidence"]  # near miss via the embedder
    assert meta["typewritr.wav"]["labels"] == "Typewriter"
    steps = meta["FootstepsGravel.wav"]
    assert steps["labels"].startswith("Walk, footsteps") and steps["caption"].endswith("on gravel")
    assert steps["licence"] == "GPL-2+"  # the copyright of the package its doc directory points to
    for row in meta.values():
        info = soundfile.info(out / row["path"])
        assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
        assert row["path"] == f"clips/{row['source_package']}/{row['clip_id']}.flac"
    skipped = {r["source_path"].split("/")[-1]: r["reason"] for r in _rows(out / "skipped.csv")}
    assert skipped["theme.ogg"] == "music track (music directory)"
    assert skipped["door_broken.wav"].startswith("undecodable")
    assert skipped["cough_quiet.wav"] == "silent"
    assert skipped["zzqx.wav"].startswith("no label")
    assert skipped["dog_bark.wav"] == ("duplicate of clapkit-test-sounds:usr/share/games/testgame/sounds/"
                                       "DogBark01.wav")
    packages = {r["package"]: r for r in _rows(out / "packages.csv")}
    assert packages["clapkit-test-sounds"]["licence_summary"] == "GPL-2+; CC0-1.0"
    assert packages["clapkit-test-theme"]["duplicates"] == "1" and packages["clapkit-test-theme"]["clips_kept"] == "1"
    assert (out / "licences/clapkit-test-sounds.copyright").read_text() == COPYRIGHT
    assert (out / "licences/clapkit-test-theme.copyright").read_text() == COPYRIGHT
    first = (out / "meta.csv").read_bytes()
    journals = {p.name: p.read_text() for p in (work / "decoded").glob("*.jsonl")}
    again = harvest([debs], out, work=work, embedder=trigram_embedder, workers=1, progress=False,
                     minilm_threshold=0.7)
    assert again.clips == 7 and (out / "meta.csv").read_bytes() == first
    assert {p.name: p.read_text() for p in (work / "decoded").glob("*.jsonl")} == journals  # nothing re-decoded


def test_derived_clips_keep_their_source_labels_licence_and_say_both_in_the_caption(debs, tmp_path):
    from clapkit.harvest.effects import EFFECTS

    out, work = tmp_path / "corpus", tmp_path / "work"
    result = harvest([debs], out, work=work, embedder=trigram_embedder, workers=1, progress=False,
                     minilm_threshold=0.7, derive=1)
    rows = _rows(out / "meta.csv")
    by_id = {r["clip_id"]: r for r in rows}
    derived = [r for r in rows if r["evidence"].startswith("derived: ")]
    effects = {e.name: e for e in EFFECTS}
    assert len(derived) == 7 == result.clips - 7 == result.per_top["Channel, environment and background"]
    assert len({r["evidence"].split(" of ")[1].split(";")[0] for r in derived}) == 7  # each source once
    for row in derived:
        name = row["source_path"].rsplit("#", 1)[1]
        source = by_id[row["evidence"].split(" of ")[1].split(";")[0]]
        assert row["labels"].split(";") == [effects[name].label] + source["labels"].split(";")
        assert row["class"] == effects[name].label and row["top_category"] == "Channel, environment and background"
        assert row["source_path"] == f"{source['source_path']}#{name}" and row["licence"] == source["licence"]
        assert row["caption"].startswith(source["caption"].rstrip(". ") + ", ")
        assert any(row["caption"].endswith(p) for p in effects[name].phrases)
        rewrites = row["rewrites"].split(" | ")
        assert len(rewrites) == 2 and all(any(r.endswith(p) for p in effects[name].phrases) for r in rewrites)
        assert [r.rsplit(", ", 1)[0] for r in rewrites] == [s.rstrip(". ") for s in source["rewrites"].split(" | ")]
        assert row["evidence"].endswith(source["evidence"]) and row["sha1"] != source["sha1"]
        info = soundfile.info(out / row["path"])
        assert (info.samplerate, info.channels) == (48000, 1) and info.duration >= float(source["duration_s"]) - 0.01
    assert not any(r["source_path"].startswith("usr/share/games/testgame/sounds/rain") and r["source_path"].endswith(
        ("#hall", "#reverb", "#room", "#echo")) for r in derived)  # no indoor acoustics on weather
    first, journal = (out / "meta.csv").read_bytes(), (work / "derived/derived.jsonl").read_text()
    harvest([debs], out, work=work, embedder=trigram_embedder, workers=1, progress=False, minilm_threshold=0.7,
            derive=1)
    assert (out / "meta.csv").read_bytes() == first and (work / "derived/derived.jsonl").read_text() == journal

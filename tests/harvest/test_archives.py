"""Qt resource bundles and Clonk groups: written here by small writers of the two formats, then listed, read,
scanned and decoded by the harvester; damaged ones are skipped with the cause."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from clapkit.harvest.archives import ArchiveError, members, read_member
from clapkit.harvest.decode import decode_task
from clapkit.harvest.scan import Candidate, Skip, scan_package


def _wav(seconds: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 22050)) / 22050
    x = 0.4 * np.sin(2 * np.pi * (300 + 100 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    soundfile.write(buf, x.astype(np.float32), 22050, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_rcc(files: dict[str, tuple[bytes, bool]], version: int = 2) -> bytes:
    """A Qt resource bundle holding ``files`` (path -> (bytes, zlib-compress?)), laid out as rcc does: header,
    data, names, tree."""
    tree: dict = {}
    for path, content in files.items():
        node = tree
        *dirs, leaf = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = content
    data, names, name_at = bytearray(), bytearray(), {}
    nodes: list[list] = [["", tree]]  # breadth-first: each directory's children are consecutive

    def name_offset(name: str) -> int:
        if name not in name_at:
            name_at[name] = len(names)
            names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return name_at[name]

    records = []
    i = 0
    while i < len(nodes):
        name, content = nodes[i]
        if isinstance(content, dict):
            first = len(nodes)
            for child in sorted(content):
                nodes.append([child, content[child]])
            records.append(struct.pack(">IHII", name_offset(name) if i else 0, 2, len(content), first))
        else:
            raw, compress = content
            stored = struct.pack(">I", len(raw)) + zlib.compress(raw) if compress else raw
            records.append(struct.pack(">IHHHI", name_offset(name), 1 if compress else 0, 0, 0, len(data)))
            data.extend(struct.pack(">I", len(stored)) + stored)
        if version >= 2:
            records[-1] += b"\0" * 8  # last-modified time
        i += 1
    header_size = 20 + (4 if version >= 3 else 0)
    data_offset = header_size
    names_offset = data_offset + len(data)
    tree_offset = names_offset + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_offset, data_offset, names_offset)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + bytes(data) + bytes(names) + b"".join(records)


def _scramble(header: bytes) -> bytes:
    out = bytearray(header)
    for i in range(0, len(out) - 2, 3):
        out[i], out[i + 2] = out[i + 2], out[i]
    return bytes(b ^ 237 for b in out)


def _group(entries: dict[str, object]) -> bytes:
    """One uncompressed Clonk group: ``entries`` maps a name to bytes (a file) or a dict (a child group)."""
    header = bytearray(204)
    header[:24] = b"RedWolf Design GrpFolder"
    header[28:40] = struct.pack("<iii", 1, 2, len(entries))
    table, blobs, offset = bytearray(), bytearray(), 0
    for name, content in entries.items():
        body = _group(content) if isinstance(content, dict) else content
        entry = bytearray(316)
        entry[: len(name)] = name.encode("latin-1")
        entry[260:284] = struct.pack("<6i", 0, int(isinstance(content, dict)), len(body), 0, offset, 0)
        table += entry
        blobs += body
        offset += len(body)
    return _scramble(bytes(header)) + bytes(table) + bytes(blobs)


def write_clonk(entries: dict[str, object]) -> bytes:
    packed = gzip.compress(_group(entries))
    return b"\x1e\x8c" + packed[2:]


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    rcc_dir = root / "usr/share/kidgame/rcc"
    rcc_dir.mkdir(parents=True)
    rcc_dir.joinpath("farm.rcc").write_bytes(write_rcc({
        "kidgame/farm/resource/dog.wav": (_wav(0.8, 1), True),
        "kidgame/farm/resource/cow.wav": (_wav(0.6, 2), False),
        "kidgame/farm/resource/farm.svg": (b"<svg/>", True),
    }))
    rcc_dir.joinpath("v3.rcc").write_bytes(write_rcc({"kidgame/rain.wav": (_wav(0.5, 3), True)}, version=3))
    rcc_dir.joinpath("broken.rcc").write_bytes(b"qres" + b"\xff" * 40)
    clonk = root / "usr/share/games/clonkish"
    clonk.mkdir(parents=True)
    clonk.joinpath("Sound.ocg").write_bytes(write_clonk({
        "Animals.ocg": {"Bat.ocg": {"Chirp.wav": _wav(0.4, 4)}, "Bird.wav": _wav(0.5, 5)},
        "Thunder1.wav": _wav(0.7, 6),
        "Readme.txt": b"sounds",
    }))
    clonk.joinpath("Cut.ocg").write_bytes(write_clonk({"Thunder1.wav": _wav(0.7, 6)})[:60])
    return root


def test_rcc_members_and_bytes_round_trip(package):
    path = package / "usr/share/kidgame/rcc/farm.rcc"
    found = members(path)
    assert list(found) == ["kidgame/farm/resource/cow.wav", "kidgame/farm/resource/dog.wav",
                           "kidgame/farm/resource/farm.svg"]
    assert found["kidgame/farm/resource/dog.wav"] == len(_wav(0.8, 1))  # the uncompressed size
    assert read_member(path, "kidgame/farm/resource/dog.wav") == _wav(0.8, 1)  # zlib member
    assert read_member(path, "kidgame/farm/resource/cow.wav") == _wav(0.6, 2)  # stored member
    v3 = package / "usr/share/kidgame/rcc/v3.rcc"
    assert read_member(v3, "kidgame/rain.wav") == _wav(0.5, 3)
    with pytest.raises(ArchiveError, match="no member"):
        read_member(path, "kidgame/farm/resource/cat.wav")


def test_clonk_group_nested_members_round_trip(package):
    path = package / "usr/share/games/clonkish/Sound.ocg"
    assert sorted(members(path)) == ["Animals.ocg/Bat.ocg/Chirp.wav", "Animals.ocg/Bird.wav", "Readme.txt",
                                     "Thunder1.wav"]
    assert read_member(path, "Animals.ocg/Bat.ocg/Chirp.wav") == _wav(0.4, 4)
    assert read_member(path, "Thunder1.wav") == _wav(0.7, 6)


@pytest.mark.parametrize("name, data, cause", [
    ("x.rcc", b"RIFF" + b"\0" * 40, "no 'qres' header"),
    ("x.rcc", b"qres" + struct.pack(">IIII", 9, 0, 0, 0), "version 9"),
    ("x.ocg", b"PK\3\4" + b"\0" * 40, "no 1e 8c signature"),
    ("x.ocg", b"\x1e\x8c" + gzip.compress(b"not a group")[2:], "no Clonk group header"),
])
def test_damaged_archives_raise_with_the_cause(tmp_path, name, data, cause):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ArchiveError, match=cause):
        members(path)


def test_scan_lists_audio_members_and_skips_damaged_archives(package):
    found = list(scan_package("kidgame", package))
    cands = {c.source_path for c in found if isinstance(c, Candidate)}
    assert cands == {
        "usr/share/kidgame/rcc/farm.rcc!kidgame/farm/resource/cow.wav",
        "usr/share/kidgame/rcc/farm.rcc!kidgame/farm/resource/dog.wav",
        "usr/share/kidgame/rcc/v3.rcc!kidgame/rain.wav",
        "usr/share/games/clonkish/Sound.ocg!Animals.ocg/Bat.ocg/Chirp.wav",
        "usr/share/games/clonkish/Sound.ocg!Animals.ocg/Bird.wav",
        "usr/share/games/clonkish/Sound.ocg!Thunder1.wav",
    }
    skips = {s.source_path: s.reason for s in found if isinstance(s, Skip)}
    assert set(skips) == {"usr/share/kidgame/rcc/broken.rcc", "usr/share/games/clonkish/Cut.ocg"}
    assert all(r.startswith("unreadable archive") for r in skips.values())


def test_decode_reads_archive_members(package, tmp_path):
    for file, member in (("usr/share/kidgame/rcc/farm.rcc", "kidgame/farm/resource/dog.wav"),
                         ("usr/share/games/clonkish/Sound.ocg", "Animals.ocg/Bat.ocg/Chirp.wav")):
        record = decode_task({"package": "kidgame", "source_path": f"{file}!{member}", "file": str(package / file),
                              "member": member, "out_dir": str(tmp_path / "out"), "clip_stem": Path(member).stem,
                              "max_seconds": 0.0, "max_segments": 3, "min_seconds": 0.2})
        assert not record.get("error"), record
        (clip,) = record["clips"]
        audio, rate = soundfile.read(clip["file"])
        assert rate == 48000 and 0.3 < len(audio) / rate < 0.9


def test_a_member_takes_the_licence_of_its_own_copyright_paragraph(tmp_path):
    """The corpus' licence column for an archive member: the DEP-5 paragraph naming the member's source path wins
    over the package's ``Files: *`` (outputs.py passes the member path, ``!`` as ``/``)."""
    from clapkit.harvest.licences import parse_copyright

    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: someone\nLicense: GPL-3+\n\n"
            "Files: src/activities/farm/resource/*\nCopyright: a recordist\nLicense: CC-BY-3.0\n")
    copyright = parse_copyright(text)
    member = "usr/share/kidgame/rcc/farm.rcc!kidgame/src/activities/farm/resource/dog.ogg"
    assert copyright.licence_of(member.replace("!", "/")) == "CC-BY-3.0"
    assert copyright.licence_of(member.split("!")[0]) == "GPL-3+"


@pytest.mark.parametrize("member, action", [
    ("Fire.ocg/Fuse.ogg", ("labels", "Hiss")),
    ("Liquids.ocg/Swim2.ogg", ("labels", "Splash, splatter")),
    ("UI.ocg/NextWave.ogg", "drop"),
    ("Fire.ocg/Fireball.ogg", "drop"),
    ("Animals.ocg/Mooq.ocg/Die1.wav", "drop"),
    ("Animals.ocg/Mooq.ocg/Snort1.wav", ("labels", "Snort")),
    ("Objects.ocg/Weapons.ocg/Bow.ocg/Shoot1.ogg", ("labels", "Arrow")),
])
def test_openclonk_rules_match_members_at_any_depth(member, action):
    """A rule on a group name fires for members right after the archive's ``!`` as well as for nested ones."""
    from clapkit.harvest.rules import package_rule

    found, _ = package_rule("openclonk-data", f"usr/share/games/openclonk/Sound.ocg!{member}")
    assert (found[0] == "drop") if action == "drop" else found == action

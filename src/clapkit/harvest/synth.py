"""An optional harvest source: a small rendered set, built as two local .deb files so the harvester reads them like
any package (labels from the file names, licences from their copyright files).

- ``clapkit-synth-speech``: espeak-ng (Debian ``espeak-ng``) saying single English words in several voices
  (text-to-speech, not real speech): ``usr/share/sounds/clapkit-synth-speech/<voice>/<word>.wav``.
- ``clapkit-synth-noise`` (:func:`render_noise`, numpy only): white, pink and brown noise, mains hum and radio
  static (``harvest.effects``), each in several lengths, levels and seeds:
  ``usr/share/sounds/clapkit-synth-noise/<kind>/<kind>_<n>.wav``; labelled by a package rule (``rules.py``).
- ``clapkit-synth-instruments``: sampled real instruments of the FluidR3 General-MIDI soundfont (Debian
  ``fluid-soundfont-gm``, MIT) played by ``fluidsynth``: a note, a scale and an arpeggio per instrument, from MIDI
  files written here: ``usr/share/sounds/clapkit-synth-instruments/<instrument>/<instrument>_<figure>.wav``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

from clapkit.errors import ClapkitError

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
WORDS = ("hello", "yes", "no", "stop", "go", "water", "seven", "three", "thank you", "good morning", "left",
         "right", "computer", "weather", "telephone", "banana", "dog", "goodbye", "help", "welcome")
VOICES = {"en-us_male": "en-us", "en-gb_male": "en-gb", "en-gb-scotland_male": "en-gb-scotland",
          "en-us_female": "en-us+f2", "en_female": "en+f3", "en_female-high": "en+f4"}
# General MIDI program (0-based) -> a name the ontology knows
INSTRUMENTS = {0: "piano", 19: "church organ", 21: "accordion", 22: "harmonica", 24: "acoustic guitar",
               27: "electric guitar", 40: "violin", 42: "cello", 46: "harp", 48: "string section", 52: "choir",
               56: "trumpet", 57: "trombone", 60: "french horn", 65: "saxophone", 68: "oboe", 71: "clarinet",
               73: "flute", 12: "marimba", 9: "glockenspiel", 104: "sitar", 105: "banjo", 109: "bagpipes",
               114: "steelpan", 47: "timpani", 6: "harpsichord", 11: "vibraphone", 70: "bassoon"}
FIGURES = {"note": [0], "scale": [0, 2, 4, 5, 7, 9, 11, 12], "arpeggio": [0, 4, 7, 12, 7, 4, 0]}
LOW = {"cello", "trombone", "timpani", "bassoon"}
_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: {name}
Comment: rendered by clapkit (clapkit.harvest.synth) with {tool}

Files: *
Copyright: {holder}
License: {licence}
"""


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ClapkitError(f"--synth needs `{tool}` (Debian package {package}): apt-get install {package}")
    return path


def _midi(program: int, notes: list[int], channel: int = 0, ticks: int = 240) -> bytes:
    """A type-0 MIDI file: program change, then each note for one beat (120 bpm), then a held last beat."""
    events = bytearray([0x00, 0xC0 | channel, program])
    for i, note in enumerate(notes):
        length = ticks * (3 if i == len(notes) - 1 else 1)
        events += bytes([0x00, 0x90 | channel, note, 96]) + _varlen(length) + bytes([0x80 | channel, note, 0])
    events += bytes([0x00, 0xFF, 0x2F, 0x00])
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _package_tree(root: Path, name: str, tool: str, holder: str, licence: str) -> Path:
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nSection: sound\nPriority: optional\nArchitecture: all\n"
        f"Maintainer: clapkit <clapkit@localhost>\nDescription: sounds rendered with {tool}\n clapkit harvest\n")
    doc = root / "usr/share/doc" / name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(_COPYRIGHT.format(name=name, tool=tool, holder=holder, licence=licence))
    return root / "usr/share/sounds" / name


def render_synth(work: Path) -> list[Path]:
    """Render both sets under ``work/synth`` (once) and return the two .deb files."""
    out = work / "synth"
    debs = [out / "clapkit-synth-speech_1.0_all.deb", out / "clapkit-synth-instruments_1.0_all.deb"]
    if all(d.is_file() for d in debs):
        return debs
    espeak, fluidsynth = _need("espeak-ng", "espeak-ng"), _need("fluidsynth", "fluidsynth")
    if not SOUNDFONT.is_file():
        raise ClapkitError(f"--synth needs {SOUNDFONT} (Debian package fluid-soundfont-gm)")
    speech = _package_tree(out / "speech", "clapkit-synth-speech", "espeak-ng", "espeak-ng authors",
                           "GPL-3+")
    for voice_dir, voice in VOICES.items():
        for word in WORDS:
            path = speech / voice_dir / f"{word.replace(' ', '_')}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(path), word], check=True,
                           capture_output=True, timeout=60)
    instruments = _package_tree(out / "instruments", "clapkit-synth-instruments", "fluidsynth and the FluidR3 GM "
                                "soundfont", "Frank Wen (FluidR3)", "MIT")
    for program, name in sorted(INSTRUMENTS.items()):
        base = 48 if name in LOW else 60
        for figure, steps in FIGURES.items():
            stem = name.replace(" ", "_")
            path = instruments / stem / f"{stem}_{figure}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            midi = path.with_suffix(".mid")
            midi.write_bytes(_midi(program, [base + s for s in steps]))
            subprocess.run([fluidsynth, "-ni", "-g", "0.8", "-r", "48000", "-F", str(path), str(SOUNDFONT),
                            str(midi)], check=True, capture_output=True, timeout=120)
            midi.unlink()
    for tree, deb in zip((out / "speech", out / "instruments"), debs):
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                       capture_output=True, timeout=600)
    return debs


NOISES = ("white_noise", "pink_noise", "brown_noise", "mains_hum", "static")
NOISE_VARIANTS = 12


def _noise(kind: str, n: int, rng) -> np.ndarray:
    from clapkit.harvest import effects

    gen = np.random.default_rng(rng.getrandbits(63))
    if kind == "white_noise":
        x = gen.standard_normal(n)
    elif kind == "pink_noise":
        x = effects.pink(n, rng)
    elif kind == "brown_noise":
        from scipy import signal

        x = signal.sosfilt(signal.butter(1, 20, "high", fs=48000, output="sos"), np.cumsum(gen.standard_normal(n)))
    elif kind == "mains_hum":
        x, _ = effects.hum_tone(n, rng)
        x = x * (1 + 0.002 * gen.standard_normal(n))
    else:
        x = effects.crackle(n, rng)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / 2400)
    x = x * fade
    return (x / (np.max(np.abs(x)) or 1.0) * rng.uniform(0.3, 0.9)).astype(np.float32)


def render_noise(work: Path) -> Path:
    """Render ``clapkit-synth-noise`` under ``work/synth`` (once) and return its .deb file."""
    import random

    import soundfile

    out = work / "synth"
    deb = out / "clapkit-synth-noise_1.0_all.deb"
    if deb.is_file():
        return deb
    tree = out / "noise"
    shutil.rmtree(tree, ignore_errors=True)
    base = _package_tree(tree, "clapkit-synth-noise", "numpy (clapkit.harvest.effects)", "clapkit authors",
                         "Apache-2.0")
    for kind in NOISES:
        for i in range(NOISE_VARIANTS):
            rng = random.Random(f"{kind}/{i}")
            path = base / kind / f"{kind}_{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, _noise(kind, 4800 * rng.randint(30, 80), rng), 48000, subtype="PCM_16")  # 3-8 s
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                   capture_output=True, timeout=600)
    return deb

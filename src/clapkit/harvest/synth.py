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
               114: "steelpan", 47: "timpani", 6: "harpsichord", 11: "vibraphone", 70: "bassoon",
               16: "hammond organ", 17: "electronic organ", 14: "tubular bells", 32: "double bass"}
# General-MIDI percussion (channel 10): 36 kick, 38 snare, 42 closed hi-hat, 46 open hi-hat, 49 crash, 45 low tom
DRUM_BEATS = {"rock": [36, 42, 38, 42, 36, 36, 38, 42, 36, 42, 38, 49],
              "shuffle": [36, 46, 38, 42, 36, 46, 38, 42, 45, 45, 38, 49],
              "fill": [36, 42, 38, 42, 45, 45, 38, 38, 45, 38, 36, 49]}
SPEECH_VERSION, INSTRUMENTS_VERSION, NOISE_VERSION = "1.0", "1.1", "1.1"  # 1.1: more instruments, a drum kit, tones
FIGURES = {"note": [0], "scale": [0, 2, 4, 5, 7, 9, 11, 12], "arpeggio": [0, 4, 7, 12, 7, 4, 0]}
LOW = {"cello", "trombone", "timpani", "bassoon", "double bass"}
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


def _package_tree(root: Path, name: str, tool: str, holder: str, licence: str, version: str) -> Path:
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nSection: sound\nPriority: optional\nArchitecture: all\n"
        f"Maintainer: clapkit <clapkit@localhost>\nDescription: sounds rendered with {tool}\n clapkit harvest\n")
    doc = root / "usr/share/doc" / name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(_COPYRIGHT.format(name=name, tool=tool, holder=holder, licence=licence))
    return root / "usr/share/sounds" / name


def render_synth(work: Path) -> list[Path]:
    """Render both sets under ``work/synth`` (each once: a set whose .deb exists is not rendered again; a new
    version of a set is a new .deb name) and return the two .deb files."""
    out = work / "synth"
    speech_deb = out / f"clapkit-synth-speech_{SPEECH_VERSION}_all.deb"
    instruments_deb = out / f"clapkit-synth-instruments_{INSTRUMENTS_VERSION}_all.deb"
    if not speech_deb.is_file():
        espeak = _need("espeak-ng", "espeak-ng")
        tree = out / "speech"
        shutil.rmtree(tree, ignore_errors=True)
        speech = _package_tree(tree, "clapkit-synth-speech", "espeak-ng", "espeak-ng authors", "GPL-3+",
                               SPEECH_VERSION)
        for voice_dir, voice in VOICES.items():
            for word in WORDS:
                path = speech / voice_dir / f"{word.replace(' ', '_')}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(path), word], check=True,
                               capture_output=True, timeout=60)
        _build(tree, speech_deb)
    if not instruments_deb.is_file():
        fluidsynth = _need("fluidsynth", "fluidsynth")
        if not SOUNDFONT.is_file():
            raise ClapkitError(f"--synth needs {SOUNDFONT} (Debian package fluid-soundfont-gm)")
        tree = out / "instruments"
        shutil.rmtree(tree, ignore_errors=True)
        instruments = _package_tree(tree, "clapkit-synth-instruments", "fluidsynth and the FluidR3 GM soundfont",
                                    "Frank Wen (FluidR3)", "MIT", INSTRUMENTS_VERSION)
        renders = [(name, figure, _midi(program, [(48 if name in LOW else 60) + s for s in steps]))
                   for program, name in sorted(INSTRUMENTS.items()) for figure, steps in FIGURES.items()]
        renders += [("drum kit", name, _midi(0, notes, channel=9, ticks=120)) for name, notes in DRUM_BEATS.items()]
        for name, figure, midi_bytes in renders:
            stem = name.replace(" ", "_")
            path = instruments / stem / f"{stem}_{figure}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            midi = path.with_suffix(".mid")
            midi.write_bytes(midi_bytes)
            subprocess.run([fluidsynth, "-ni", "-g", "0.8", "-r", "48000", "-F", str(path), str(SOUNDFONT),
                            str(midi)], check=True, capture_output=True, timeout=120)
            midi.unlink()
        _build(tree, instruments_deb)
    return [speech_deb, instruments_deb]


def _build(tree: Path, deb: Path) -> None:
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                   capture_output=True, timeout=600)


NOISES = ("white_noise", "pink_noise", "brown_noise", "mains_hum", "static", "dtmf", "dial_tone", "busy_signal",
          "reversing_beeps")
DTMF = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
        "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}
DIAL_TONES = ((350, 440), (425,), (350, 450), (400, 450))  # North America, most of Europe, UK, Australia-like
BUSY_SIGNALS = (((480, 620), 0.5, 0.5), ((425,), 0.5, 0.5), ((400,), 0.375, 0.375), ((425,), 0.25, 0.25))
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
    elif kind == "static":
        x = effects.crackle(n, rng)
    else:
        x = _tones(kind, n, rng)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / 2400)
    x = x * fade
    return (x / (np.max(np.abs(x)) or 1.0) * rng.uniform(0.3, 0.9)).astype(np.float32)


def _tones(kind: str, n: int, rng) -> np.ndarray:
    """Telephone signals (keypad DTMF digits, dial tone, busy signal; band-limited like a telephone line) and a
    vehicle's reversing beeper."""
    from scipy import signal

    t = np.arange(n) / 48000
    def tone(freqs, on, off):
        gate = ((t % (on + off)) < on).astype(float) if off else np.ones(n)
        return gate * sum(np.sin(2 * np.pi * f * t) for f in freqs)
    if kind == "dtmf":
        x, at = np.zeros(n), int(0.3 * 48000)
        while at < n - 4800:
            length = int(rng.uniform(0.08, 0.25) * 48000)
            low, high = DTMF[rng.choice(sorted(DTMF))]
            x[at : at + length] = (np.sin(2 * np.pi * low * t[:length]) + np.sin(2 * np.pi * high * t[:length]))[
                : n - at]
            at += length + int(rng.uniform(0.08, 0.4) * 48000)
    elif kind == "dial_tone":
        x = tone(rng.choice(DIAL_TONES), 1, 0)
    elif kind == "busy_signal":
        freqs, on, off = rng.choice(BUSY_SIGNALS)
        x = tone(freqs, on, off)
    else:  # reversing beeps: 1-1.4 kHz, about 0.5 s on and off
        x = tone((rng.uniform(1000, 1400),), rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6))
        return x
    return signal.sosfilt(signal.butter(4, [300, 3400], "bandpass", fs=48000, output="sos"), x)


def render_noise(work: Path) -> Path:
    """Render ``clapkit-synth-noise`` under ``work/synth`` (once) and return its .deb file."""
    import random

    import soundfile

    out = work / "synth"
    deb = out / f"clapkit-synth-noise_{NOISE_VERSION}_all.deb"
    if deb.is_file():
        return deb
    tree = out / "noise"
    shutil.rmtree(tree, ignore_errors=True)
    base = _package_tree(tree, "clapkit-synth-noise", "numpy (clapkit.harvest.effects)", "clapkit authors",
                         "Apache-2.0", NOISE_VERSION)
    for kind in NOISES:
        for i in range(NOISE_VARIANTS):
            rng = random.Random(f"{kind}/{i}")
            path = base / kind / f"{kind}_{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, _noise(kind, 4800 * rng.randint(30, 80), rng), 48000, subtype="PCM_16")  # 3-8 s
    _build(tree, deb)
    return deb

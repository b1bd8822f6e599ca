"""Channel/environment effects (clapkit.harvest.effects), the choice of clips to derive from (harvest.derive) and the
rendered noise package (harvest.synth.render_noise), on made-up audio and rows."""

from __future__ import annotations

import random
import subprocess

import numpy as np
import pytest
import soundfile

from clapkit.harvest.derive import CHANNEL, choose_sources
from clapkit.harvest.effects import EFFECTS, SAMPLE_RATE, room_impulse_response
from clapkit.harvest.labels import Labeler
from clapkit.harvest.synth import NOISE_VARIANTS, NOISES, render_noise
from clapkit.ontology import default_ontology


def _tone(seconds: float = 1.0, hz: float = 100.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = 0.5 * np.sin(2 * np.pi * hz * t)
    x[int(0.2 * SAMPLE_RATE):] = 0.0  # a 0.2 s burst, then silence (room for tails and echoes)
    return x.astype(np.float32)


def _band_energy(x: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float(spectrum[(f >= low) & (f < high)].sum() / spectrum.sum())


def test_every_effect_is_finite_bounded_deterministic_and_its_label_exists():
    names = {e.name for e in default_ontology()}
    x = _tone()
    for effect in EFFECTS:
        y, params = effect.apply(x, random.Random("seed"))
        again, _ = effect.apply(x, random.Random("seed"))
        assert y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 1.0, effect.name
        assert np.array_equal(y, again) and params, effect.name
        assert effect.label in names and len(effect.phrases) >= 2


def test_reverberation_leaves_a_decaying_tail_and_echo_repeats():
    by_name = {e.name: e for e in EFFECTS}
    x = _tone()
    quiet_after = int(0.6 * SAMPLE_RATE)  # 0.4 s after the burst ended
    for name, more in (("hall", 1.0), ("reverb", 2.5), ("room", 0.0)):
        y, _ = by_name[name].apply(x, random.Random(1))
        assert len(y) >= len(x) + more * SAMPLE_RATE
        tail = np.abs(y[quiet_after : quiet_after + 4800]).max()
        assert (tail > 0.01) == (name != "room"), name  # a small room has died away by then
    h = room_impulse_response(2.0, random.Random(0))
    energy = np.cumsum(h[::-1] ** 2)[::-1]  # Schroeder decay: -60 dB near RT60
    decay_db = 10 * np.log10(energy[int(1.0 * SAMPLE_RATE)] / energy[1])
    assert -40 < decay_db < -20
    y, params = by_name["echo"].apply(x, random.Random(2))
    delay = float(params.split("every ")[1].split(" s")[0])
    step = int(delay * SAMPLE_RATE)
    assert np.abs(y[step : step + 4800]).max() > 0.2 and np.abs(y[step // 2 : step // 2 + 2400]).max() < 0.01


def test_radio_hum_and_noise_change_the_spectrum_as_named():
    by_name = {e.name: e for e in EFFECTS}
    x = _tone(1.0, 100.0)
    x[:] = 0.5 * np.sin(2 * np.pi * 100 * np.arange(len(x)) / SAMPLE_RATE) + 0.5 * np.sin(
        2 * np.pi * 1000 * np.arange(len(x)) / SAMPLE_RATE)
    y, _ = by_name["radio"].apply(x, random.Random(3))
    assert _band_energy(y, 50, 150) < 0.1 * _band_energy(x, 50, 150)  # the band-limit cuts the 100 Hz part
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    silence[:4800] = 0.5
    y, params = by_name["hum"].apply(silence, random.Random(4))
    mains = int(params.split(" Hz")[0])
    assert _band_energy(y[9600:], mains - 5, mains + 5) > 0.1
    y, _ = by_name["white"].apply(_tone(1.0, 200.0), random.Random(5))
    assert _band_energy(y, 5000, 20000) > 0.05 > 100 * _band_energy(_tone(1.0, 200.0), 5000, 20000)  # the hiss


def _row(clip_id: str, cls: str, top: str = "Animal", labels: str = "", package: str = "pkg",
         duration: str = "1.000") -> dict:
    return {"clip_id": clip_id, "class": cls, "labels": labels or cls, "top_category": top,
            "source_package": package, "duration_s": duration, "source_path": f"x/{clip_id}.wav"}


def test_sources_go_round_robin_over_classes_once_each_and_skip_unsuitable_clips():
    rows = [_row(f"dog{i}", "Bark") for i in range(10)]
    rows += [_row("cat0", "Meow"), _row("rain0", "Rain", "Natural sounds")]
    rows += [_row("three", "Bark", labels="Bark;Dog;Domestic animals, pets"), _row("echo", "Echo", CHANNEL),
             _row("tts", "Speech", "Human sounds", package="clapkit-synth-speech"),
             _row("short", "Meow", duration="0.300")]
    chosen = choose_sources(rows, 2)
    ids = [src["clip_id"] for _, src in chosen]
    assert len(ids) == len(set(ids))  # a clip gets one effect at most
    assert not {"three", "echo", "tts", "short"} & set(ids)  # 3 labels, channel, rendered speech, too short
    first = [src["class"] for effect, src in chosen if effect.name == "hall"]
    assert sorted(first) == ["Bark", "Meow"]  # one per class before a second of any class; no rain indoors
    radio = [src["class"] for effect, src in chosen if effect.name == "radio"]
    assert len(radio) == 2 and len(set(radio)) == 2  # the rain clip may go on the radio
    assert all(src["class"] != "Rain" for effect, src in chosen if effect.name in ("hall", "reverb", "room", "echo"))
    assert choose_sources(rows, 2) == chosen
    assert CHANNEL not in {src["top_category"] for _, src in chosen}


@pytest.fixture(scope="module")
def noise_deb(tmp_path_factory):
    return render_noise(tmp_path_factory.mktemp("work"))


def test_noise_package_renders_every_kind_and_the_package_rule_labels_it(noise_deb, tmp_path):
    subprocess.run(["dpkg-deb", "-x", str(noise_deb), str(tmp_path)], check=True)
    files = sorted(tmp_path.glob("usr/share/sounds/clapkit-synth-noise/*/*.wav"))
    assert len(files) == len(NOISES) * NOISE_VARIANTS
    assert (tmp_path / "usr/share/doc/clapkit-synth-noise/copyright").read_text().count("Apache-2.0") == 1
    labeler = Labeler(default_ontology(), None)
    expected = {"white_noise": "White noise", "pink_noise": "Pink noise", "brown_noise": "Noise",
                "mains_hum": "Mains hum", "static": "Static", "dtmf": "Telephone dialing, DTMF",
                "dial_tone": "Dial tone", "busy_signal": "Busy signal", "reversing_beeps": "Reversing beeps"}
    peaks = set()
    for path in files:
        rel = path.relative_to(tmp_path).as_posix()
        assert [e.name for e in labeler.label("clapkit-synth-noise", rel).labels] == [expected[path.parent.name]]
        x, rate = soundfile.read(path)
        assert rate == SAMPLE_RATE and 3.0 <= len(x) / rate <= 8.0 and 0.2 < np.abs(x).max() < 1.0
        peaks.add(round(float(np.abs(x).max()), 4))
    assert len(peaks) > len(files) // 2  # the variants differ
    white = soundfile.read(tmp_path / "usr/share/sounds/clapkit-synth-noise/white_noise/white_noise_00.wav")[0]
    pink = soundfile.read(tmp_path / "usr/share/sounds/clapkit-synth-noise/pink_noise/pink_noise_00.wav")[0]
    assert _band_energy(pink, 20, 500) > 3 * _band_energy(white, 20, 500)
    dtmf = soundfile.read(tmp_path / "usr/share/sounds/clapkit-synth-noise/dtmf/dtmf_00.wav")[0]
    assert _band_energy(dtmf, 690, 1480) > 0.9  # keypad tones only (697-941 Hz rows, 1209-1477 Hz columns)
    busy = np.abs(soundfile.read(tmp_path / "usr/share/sounds/clapkit-synth-noise/busy_signal/busy_signal_00.wav")[0])
    frames = busy[: len(busy) // 2400 * 2400].reshape(-1, 2400).max(axis=1)
    assert (frames < 0.01).mean() > 0.3 and (frames > 0.1).mean() > 0.3  # on and off
    assert render_noise(noise_deb.parent.parent) == noise_deb  # rendered once

"""The bad-input corpus, generated at test time: every kind of file a user points clapkit at by mistake, next to a
few good ones, and damaged checkpoints of every format. The micro model (``tests/conftest.py``: random weights, tiny
sizes) keeps every command fast."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from clapkit import cli
from tests.audio_fixtures import clip, write_audio
from tests.small_models import MICRO_RATE

SILENT_RATE = 2000  # the hour of silence: 1 h at 2 kHz, written as a sparse file (14 MB of zeros, no disk use)

# file name -> a piece of the reason every command gives for it
BAD = {
    "empty.wav": "file is empty",
    "truncated.wav": "truncated: the header says 3.00 s",
    "text.mp3": "not an audio file",
    "nan.wav": "NaN",
    "zero.wav": "no audio samples",
    "loop_a.wav": "symbolic link loop",
    "loop_b.wav": "symbolic link loop",
    "dangling.wav": "broken symbolic link",
}
GOOD = ["good.wav", "eight_channels.wav", "rate_8k.wav", "rate_192k.wav", 'naïve 雨 "quoted" \'x\'.flac']


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``clapkit ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # the parser refused the arguments
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def wav_claiming(path: Path, seconds: float, rate: int = MICRO_RATE, size: int = 100) -> Path:
    """A ``size``-byte PCM-16 WAV whose header declares ``seconds`` of audio."""
    data_bytes = int(seconds * rate) * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    path.write_bytes(header + bytes(size - len(header)))
    return path


def silent_hour(path: Path) -> Path:
    """1 h of digital silence: a WAV header, then a sparse hole of zeros (cheap to write, decodes as silence)."""
    frames = 3600 * SILENT_RATE
    write_audio(path, np.zeros(16, dtype=np.int16), SILENT_RATE, subtype="PCM_16")
    header = bytearray(path.read_bytes()[:44])
    header[4:8] = struct.pack("<I", 36 + 2 * frames)
    header[40:44] = struct.pack("<I", 2 * frames)
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(44 + 2 * frames)
    return path


def write_corpus(folder: Path) -> Path:
    write_audio(folder / "good.wav", clip(1.0, 1), MICRO_RATE)
    write_audio(folder / "eight_channels.wav", np.stack([clip(0.5, c) for c in range(8)], axis=1), MICRO_RATE)
    write_audio(folder / "rate_8k.wav", clip(0.5, 2, 8000), 8000)
    write_audio(folder / "rate_192k.wav", clip(0.3, 3, 192000), 192000)
    write_audio(folder / GOOD[4], clip(0.5, 4), MICRO_RATE)
    (folder / "empty.wav").write_bytes(b"")
    wav_claiming(folder / "truncated.wav", 3.0)
    (folder / "text.mp3").write_text("This is a shopping list, not a song.\n" * 40)
    nan = clip(0.5, 5)
    nan[100] = np.nan
    write_audio(folder / "nan.wav", nan, MICRO_RATE, subtype="FLOAT")
    write_audio(folder / "zero.wav", np.zeros(0, dtype=np.float32), MICRO_RATE)
    os.symlink("loop_b.wav", folder / "loop_a.wav")
    os.symlink("loop_a.wav", folder / "loop_b.wav")
    os.symlink("gone.wav", folder / "dangling.wav")
    (folder / "folder.wav").mkdir()  # a directory named like audio: a folder, searched (it is empty)
    return folder


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("bad-corpus") / "corpus")


@pytest.fixture(scope="session")
def silent_file(tmp_path_factory) -> Path:
    return silent_hour(tmp_path_factory.mktemp("silence") / "silent_1h.wav")


@pytest.fixture(scope="session")
def damaged_checkpoints(tmp_path_factory, micro_model_dir) -> dict[str, tuple[Path, str]]:
    """name -> (path, a piece of the message): damaged checkpoints of every format clapkit reads."""
    root = tmp_path_factory.mktemp("damaged-checkpoints")
    rng = np.random.default_rng(0)
    weights = (micro_model_dir / "model.safetensors").read_bytes()
    (root / "cut.safetensors").write_bytes(weights[: len(weights) // 3])
    (root / "random.safetensors").write_bytes(rng.bytes(4096))
    length = struct.unpack("<Q", weights[:8])[0]
    header = json.loads(weights[8 : 8 + length])
    header["__metadata__"]["clapkit_config"] = '{"name": "micro", broken'
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (root / "bad-config.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + weights[8 + length :])
    (root / "random.pt").write_bytes(rng.bytes(1 << 20))
    (root / "random.pth").write_bytes(rng.bytes(4096))
    torch.save({"state_dict": {"w": torch.zeros(4)}}, root / "whole.pt")
    whole = (root / "whole.pt").read_bytes()
    (root / "cut.pt").write_bytes(whole[: len(whole) // 2])
    (root / "hf").mkdir()
    (root / "hf" / "config.json").write_text('{"model_type": "clap", "audio_config": {')
    (root / "clapkit-dir").mkdir()
    (root / "clapkit-dir" / "config.json").write_text((micro_model_dir / "config.json").read_text()[:-40])
    (root / "clapkit-dir" / "model.safetensors").write_bytes(weights)
    return {
        "cut.safetensors": (root / "cut.safetensors", "not a valid safetensors file (truncated download?)"),
        "random.safetensors": (root / "random.safetensors", "not a valid safetensors file (truncated download?)"),
        "bad-config.safetensors": (root / "bad-config.safetensors", "clapkit config is not valid JSON"),
        "random.pt": (root / "random.pt", "not a PyTorch checkpoint"),
        "random.pth": (root / "random.pth", "not a PyTorch checkpoint"),
        "cut.pt": (root / "cut.pt", "not a valid PyTorch checkpoint (truncated download?)"),
        "hf": (root / "hf", "config.json is not valid JSON"),
        "clapkit-dir": (root / "clapkit-dir", "config.json is not valid JSON"),
    }

"""Decode one harvested file into clips: mono 48 kHz, leading/trailing silence trimmed, long files cut into at most
three <= 10 s segments, 16-bit FLAC, with the SHA-1 of the quantised PCM for de-duplication.

Runs in worker processes: :func:`decode_task` takes and returns plain data. Archive members are read with
``harvest.archives`` into a temporary file; WavPack goes through Debian's ``wvunpack``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from clapkit.audio.io import load_audio
from clapkit.errors import AudioError
from clapkit.harvest.archives import ArchiveError, read_member

SAMPLE_RATE = 48000
MIN_SECONDS = 0.2  # a clap, a knock, a footstep: complete sounds (corpus v2 had 0.3 s)
CUT_ABOVE_SECONDS = 20.0
SEGMENT_SECONDS = 10.0
MAX_SEGMENTS = 3  # speech and anything else that is not a field recording
MAX_SEGMENTS_FIELD = 9  # long recordings of nature, animals, places and things (wind, a stream, a frog pond)
MIN_LAST_SEGMENT_SECONDS = 2.0
SILENT_DBFS = -60.0  # a clip whose loudest 10 ms frame is below this is silent
TRIM_BELOW_PEAK_DB = 50.0  # trimmed edges: frames more than this below the loudest frame (and under -60 dBFS)
_FRAME = 480  # 10 ms at 48 kHz
_PAD = 2400  # 50 ms kept around the sound
def _load(file: str, member: str, source: str) -> np.ndarray:
    suffix = Path(member or file).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="clapkit-harvest-") as tmp:
        if member:
            path = Path(tmp) / f"member{suffix}"
            try:
                path.write_bytes(read_member(file, member))
            except ArchiveError as exc:
                raise AudioError(source, str(exc)) from None
        else:
            path = Path(file)
        if suffix == ".wv":
            if shutil.which("wvunpack") is None:
                raise AudioError(source, "WavPack needs `wvunpack` (Debian package wavpack); not installed")
            wav = Path(tmp) / "unpacked.wav"
            done = subprocess.run(["wvunpack", "-q", "-y", str(path), "-o", str(wav)], capture_output=True,
                                  timeout=600, check=False)
            if done.returncode != 0 or not wav.exists():
                raise AudioError(source, f"wvunpack failed: {done.stderr.decode(errors='replace').strip()[:200]}")
            path = wav
        return load_audio(path, SAMPLE_RATE)


def _frame_db(x: np.ndarray) -> np.ndarray:
    n = max(1, len(x) // _FRAME)
    frames = x[: n * _FRAME].reshape(n, -1) if len(x) >= _FRAME else x.reshape(1, -1)
    rms = np.sqrt(np.mean(np.square(frames.astype(np.float64)), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def trim(x: np.ndarray) -> np.ndarray | None:
    """``x`` without silent edges, or ``None`` when it is silent throughout."""
    db = _frame_db(x)
    peak = float(db.max())
    if peak < SILENT_DBFS:
        return None
    loud = np.flatnonzero(db > max(peak - TRIM_BELOW_PEAK_DB, SILENT_DBFS))
    start = max(0, int(loud[0]) * _FRAME - _PAD)
    end = min(len(x), (int(loud[-1]) + 1) * _FRAME + _PAD)
    return x[start:end]


def segments(x: np.ndarray, max_segments: int = MAX_SEGMENTS) -> list[np.ndarray]:
    """Whole clips up to 20 s; longer ones -> consecutive 10 s segments, at most ``max_segments``, a short tail
    dropped."""
    if len(x) <= CUT_ABOVE_SECONDS * SAMPLE_RATE:
        return [x]
    size = int(SEGMENT_SECONDS * SAMPLE_RATE)
    parts = [x[i : i + size] for i in range(0, len(x), size)][:max_segments]
    return [p for p in parts if len(p) >= MIN_LAST_SEGMENT_SECONDS * SAMPLE_RATE]


def pcm_sha1(x: np.ndarray) -> str:
    """SHA-1 of the clip quantised to 8 bits after peak normalisation: copies re-encoded at another level or bit
    depth hash alike."""
    peak = float(np.max(np.abs(x))) or 1.0
    return hashlib.sha1(np.round(x / peak * 127).astype(np.int8).tobytes()).hexdigest()


def stale(record: dict, task: dict) -> bool:
    """Whether a cached decode ``record`` would come out differently for ``task``: it was cut at fewer segments
    than ``task`` allows, dropped as too short under a longer minimum, or dropped as too long where ``task`` has
    no maximum (records of corpus v2 lack the fields: 3 segments, 0.3 s)."""
    if len(record["clips"]) >= record.get("max_segments", 3) and task["max_segments"] > record.get("max_segments", 3):
        return True
    if record["skip"].startswith("longer than") and not task["max_seconds"]:
        return True
    return record["skip"].startswith("too short") and record.get("min_seconds", 0.3) > task["min_seconds"]


def decode_task(task: dict) -> dict:
    """``task``: ``{package, source_path, file, member, out_dir, clip_stem, max_seconds, max_segments,
    min_seconds}`` -> ``{..., "clips": [{segment, file, sha1, duration_s}], "skip": reason}`` (with the task's
    ``max_segments`` and ``min_seconds``). ``max_seconds`` (or 0) drops longer files whole."""
    result = {"package": task["package"], "source_path": task["source_path"], "clips": [], "skip": "",
              "max_segments": task["max_segments"], "min_seconds": task["min_seconds"]}
    try:
        x = _load(task["file"], task["member"], task["source_path"])
    except (AudioError, OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        result["skip"] = f"undecodable: {str(exc).split(': ', 1)[-1][:200]}"
        return result
    full_seconds = len(x) / SAMPLE_RATE
    if task.get("max_seconds") and full_seconds > task["max_seconds"]:
        result["skip"] = f"longer than {task['max_seconds']:.0f} s ({full_seconds:.0f} s): music track"
        return result
    trimmed = trim(x)
    if trimmed is None:
        result["skip"] = "silent"
        return result
    if len(trimmed) < task["min_seconds"] * SAMPLE_RATE:
        result["skip"] = (f"too short after trimming silence ({len(trimmed) / SAMPLE_RATE:.2f} s < "
                          f"{task['min_seconds']} s)")
        return result
    out_dir = Path(task["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = segments(trimmed, task["max_segments"])
    for index, part in enumerate(parts):
        name = f"{task['clip_stem']}-{index}.flac" if len(parts) > 1 else f"{task['clip_stem']}.flac"
        path = out_dir / name
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        peak = float(np.max(np.abs(part)))
        if peak > 1.0:
            part = part / peak
        soundfile.write(tmp, part, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        os.replace(tmp, path)
        result["clips"].append({"segment": index if len(parts) > 1 else -1, "file": str(path),
                                "sha1": pcm_sha1(part), "duration_s": round(len(part) / SAMPLE_RATE, 3)})
    return result

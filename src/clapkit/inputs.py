"""Find the audio files a job works on: files, folders (recursive, by extension), glob patterns and list files.

Every path comes back absolute and normalised (``os.path.abspath``), de-duplicated and sorted, so the same inputs
give the same list whatever the order or spelling they were given in. Inputs that cannot be found are returned as
:class:`Failure` records with the reason, not raised: a batch job reports them and goes on.

Which formats decode: see :func:`decodable_formats` (libsndfile formats always; m4a/aac/wma/... only with ffmpeg).
"""

from __future__ import annotations

import glob
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from clapkit.errors import ClapkitError

# Extensions picked up when scanning folders and glob matches (embedding, indexing, training folders, evaluation
# folders, shard members: the one list). Explicitly named files are taken whatever their name.
LIBSNDFILE_EXTENSIONS = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aiff",
    ".aif",
    ".aifc",
    ".caf",
    ".w64",
    ".rf64",
    ".au",
    ".snd",
)
# video containers decode too, but are only taken when named
FFMPEG_EXTENSIONS = (".m4a", ".aac", ".wma", ".mka", ".webm")
AUDIO_EXTENSIONS = LIBSNDFILE_EXTENSIONS + FFMPEG_EXTENSIONS
_GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class Failure:
    """An input that could not be used: ``source`` names it (a path or a pattern), ``reason`` says why."""

    source: str
    reason: str


@dataclass
class Discovery:
    """The result of :func:`discover_inputs`: sorted absolute ``paths`` and the inputs that were not found."""

    paths: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def decodable_formats() -> dict[str, str]:
    """Extension -> decoder on this machine: ``"libsndfile"``, ``"ffmpeg"`` or ``"unavailable (install ffmpeg)"``."""
    mp3 = "MP3" in soundfile.available_formats()
    ffmpeg = shutil.which("ffmpeg") is not None
    formats = {}
    for ext in LIBSNDFILE_EXTENSIONS:
        formats[ext] = "libsndfile"
    if not mp3:  # libsndfile < 1.1
        formats[".mp3"] = "ffmpeg" if ffmpeg else "unavailable (libsndfile < 1.1; install ffmpeg)"
    for ext in FFMPEG_EXTENSIONS:
        formats[ext] = "ffmpeg" if ffmpeg else "unavailable (install ffmpeg)"
    return formats


def parse_extensions(text: str) -> tuple[str, ...]:
    """``"wav,flac"`` (a ``--ext`` value) -> ``(".wav", ".flac")``."""
    return tuple("." + e.strip().lstrip(".").lower() for e in text.split(",") if e.strip())


def read_list_file(path: str | os.PathLike[str], what: str = "list file") -> list[str]:
    """Non-empty lines of a text file, stripped; lines starting with ``#`` are comments."""
    p = Path(path)
    if not p.is_file():
        raise ClapkitError(f"{path}: {what} not found; check the path (one entry per line, '#' starts a comment)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClapkitError(
            f"{path}: cannot read the {what} ({exc}); it must be UTF-8 text, one entry per line"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _normalise(path: str) -> str:
    return os.path.abspath(os.path.normpath(path))


def _has_extension(name: str, extensions: Sequence[str]) -> bool:
    return name.lower().endswith(tuple(extensions))


def _scan_folder(folder: str, extensions: Sequence[str], recursive: bool) -> list[str]:
    """Audio files under ``folder`` (hidden files and folders skipped, symlinked folders not followed)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found.extend(os.path.join(root, f) for f in files if not f.startswith(".") and _has_extension(f, extensions))
    return found


def _expand(source: str, extensions: Sequence[str], recursive: bool) -> tuple[list[str], Failure | None]:
    if os.path.isdir(source):
        found = _scan_folder(source, extensions, recursive)
        if not found:
            return [], Failure(source, f"folder holds no audio files with extensions {', '.join(extensions)}")
        return found, None
    if os.path.isfile(source):
        return [source], None
    if any(c in source for c in _GLOB_CHARACTERS):
        found = []
        for match in glob.glob(source, recursive=True):
            if os.path.isdir(match):
                found.extend(_scan_folder(match, extensions, recursive))
            elif _has_extension(match, extensions):
                found.append(match)
        if not found:
            return [], Failure(source, "pattern matched no audio files; check the pattern (quote it in the shell)")
        return found, None
    if os.path.lexists(source):  # a broken or looping link, a pipe, a path this user may not look into
        from clapkit.audio.probe import check_file
        from clapkit.errors import AudioError

        try:
            check_file(source)
        except AudioError as exc:
            return [], Failure(source, exc.reason)
        return [], Failure(source, "not a regular file or folder (broken link or special file)")
    return [], Failure(source, "file not found; check the path")


def discover_inputs(
    sources: Iterable[str | os.PathLike[str]],
    *,
    files_from: str | os.PathLike[str] | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    recursive: bool = True,
) -> Discovery:
    """Expand ``sources`` (files, folders, glob patterns) and the entries of ``files_from`` into audio file paths.

    - a file is taken as given, whatever its extension;
    - a folder contributes its files with one of ``extensions`` (case-insensitive), recursively unless
      ``recursive=False``; names starting with ``.`` are skipped;
    - a pattern (``*``, ``?``, ``[``; ``**`` spans folders) contributes its matches with one of ``extensions``;
    - ``files_from``: a text file with one source per line (files, folders or patterns; relative entries are relative
      to the list file's folder; ``#`` comments and blank lines are ignored).
    Sources that match nothing become :class:`Failure` records; a missing ``files_from`` raises ``ClapkitError``.
    """
    extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    entries = [str(s) for s in sources]
    if files_from is not None:
        base = os.path.dirname(os.path.abspath(files_from))
        entries += [
            e if os.path.isabs(e) else os.path.join(base, e) for e in read_list_file(files_from, "list of files")
        ]
    paths: set[str] = set()
    failures = []
    for source in entries:
        found, failure = _expand(os.path.expanduser(source), extensions, recursive)
        paths.update(_normalise(p) for p in found)
        if failure is not None:
            failures.append(failure)
    return Discovery(paths=sorted(paths), failures=failures)


def probe_duration(path: str) -> float:
    """Duration in seconds from the file header (cheap: no decoding); ``nan`` when the header cannot be read."""
    from clapkit.audio.probe import captured_stderr

    try:
        with captured_stderr():  # the MP3 decoder's notes about a non-audio file: reported when it is decoded
            info = soundfile.info(path)
    except Exception:  # unreadable headers are reported when the file is decoded
        return math.nan
    if info.samplerate <= 0 or info.frames < 0:
        return math.nan
    return info.frames / info.samplerate

"""Long audio: embed a recording of any length as overlapping windows, streamed, and find where a text matches.

The file is read and resampled block by block (:func:`clapkit.audio.io.stream_windows`) in a background thread that
stays at most ``prefetch`` batches of windows ahead of the model, so memory is bounded by a few batches of windows
whatever the file's length. Windows default to the model's clip length with 50% overlap; the last window holds the
rest of the file (shorter windows are filled like any short clip, by the model's filling rule).
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from clapkit.audio.io import is_silent, prepare_waveform, stream_windows
from clapkit.errors import ClapkitError
from clapkit.files import atomic_write

_DONE = object()


FLAT_SPREAD = 0.005  # a score curve whose standard deviation is below this is flat: nothing stands out
SILENT_NOTE = "the audio is silent (every window below -90 dBFS): nothing in it can match a text"


@dataclass
class WindowBatch:
    """Embeddings of consecutive windows: ``starts``/``ends`` in seconds, ``embeddings (n, D)``, ``silent (n,)``
    (the window is below -90 dBFS, :func:`clapkit.audio.io.is_silent`)."""

    starts: np.ndarray
    ends: np.ndarray
    embeddings: np.ndarray
    silent: np.ndarray | None = None


@dataclass(frozen=True)
class TimeRange:
    """A stretch of the recording where the text matches: ``start``/``end`` in seconds, ``score`` the best window's."""

    start: float
    end: float
    score: float


@dataclass
class LocateResult:
    """Similarity over time: one cosine ``scores[i]`` per window ``[starts[i], ends[i])`` (seconds), the
    ``threshold`` used and the merged ``ranges`` of windows at or above it. Silent windows (``silent[i]``) are never
    in a range; ``note`` says why there is none when the audio is silent or the curve flat."""

    text: str
    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    threshold: float
    ranges: list[TimeRange]
    silent: np.ndarray | None = None
    note: str | None = None


def window_sizes(model, window_seconds: float | None = None, hop_seconds: float | None = None) -> tuple[int, int]:
    """(window, hop) in samples at the model's rate; defaults: the model's clip length and half of it."""
    rate = model.sample_rate
    window = model.config.frontend.clip_samples if window_seconds is None else round(window_seconds * rate)
    hop = window // 2 if hop_seconds is None else round(hop_seconds * rate)
    if window < 1 or hop < 1:
        raise ClapkitError(
            f"window ({window_seconds} s) and hop ({hop_seconds} s) must be positive and at least one "
            f"sample at {rate} Hz"
        )
    return window, hop


def _array_windows(waveform: np.ndarray, window: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """The same windows as ``stream_windows``, over an in-memory waveform."""
    start, covered = 0, 0
    while start + window <= waveform.size:
        yield start, waveform[start : start + window]
        covered, start = start + window, start + hop
    if start < waveform.size and waveform.size > covered:
        yield start, waveform[start:]


def embed_windows(
    model,
    source: str | os.PathLike[str] | np.ndarray,
    *,
    sample_rate: int | None = None,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    batch_size: int = 8,
    prefetch: int = 2,
) -> Iterator[WindowBatch]:
    """Embed ``source`` (a file, or a 1-D/2-D array with ``sample_rate``) window by window, ``batch_size`` at a time.

    Files are streamed: decoding runs in a background thread, at most ``prefetch`` batches ahead of the model.
    Silent windows (below -90 dBFS) are not run through the model: they get the embedding of digital silence of
    their length (computed once), and ``silent`` marks them, so an hour of silence costs a decode, not a model run."""
    window, hop = window_sizes(model, window_seconds, hop_seconds)
    rate = model.sample_rate
    if isinstance(source, (str, os.PathLike)):
        windows = stream_windows(source, rate, window, hop)
    else:
        if sample_rate is None:
            raise ClapkitError(f"in-memory audio needs sample_rate= (this model runs at {rate} Hz)")
        windows = _array_windows(prepare_waveform(source, sample_rate, rate, "array"), window, hop)
    batches: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def produce() -> None:
        try:
            batch: list[tuple[int, np.ndarray]] = []
            for item in windows:
                batch.append(item)
                if len(batch) == batch_size:
                    if not _put(batches, batch, stop):
                        return  # the consumer stopped early: stop reading the file
                    batch = []
            if batch:
                _put(batches, batch, stop)
            _put(batches, _DONE, stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(batches, exc, stop)
        finally:
            close = getattr(windows, "close", None)
            if close is not None:
                close()  # closes the file of a stream

    thread = threading.Thread(target=produce, name="clapkit-stream", daemon=True)
    thread.start()
    quiet_embeddings: dict[int, np.ndarray] = {}
    try:
        while True:
            item = batches.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            starts = np.array([s for s, _ in item], dtype=np.int64)
            lengths = np.array([w.size for _, w in item], dtype=np.int64)
            silent = np.array([is_silent(w) for _, w in item], dtype=bool)
            heard = [w for (_, w), quiet in zip(item, silent) if not quiet]
            embeddings = np.zeros((len(item), model.config.joint_dim), dtype=np.float32)
            if heard:
                embeddings[~silent] = model.embed_waveforms(heard, batch_size=len(heard))
            for i in np.flatnonzero(silent):  # silence never matches: one embedding per length, not one per window
                size = int(lengths[i])
                if size not in quiet_embeddings:
                    quiet_embeddings[size] = model.embed_waveforms([np.zeros(size, np.float32)], batch_size=1)[0]
                embeddings[i] = quiet_embeddings[size]
            yield WindowBatch(starts / rate, (starts + lengths) / rate, embeddings, silent)
    finally:
        stop.set()
        thread.join(timeout=5)


def _put(target: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room; False if the consumer stopped first."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def time_ranges(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, threshold: float) -> list[TimeRange]:
    """Merge the windows scoring at or above ``threshold`` into ranges (overlapping or touching windows join)."""
    ranges: list[TimeRange] = []
    for start, end, score in zip(starts, ends, scores):
        if score < threshold:
            continue
        if ranges and start <= ranges[-1].end:
            last = ranges[-1]
            ranges[-1] = TimeRange(last.start, max(last.end, float(end)), max(last.score, float(score)))
        else:
            ranges.append(TimeRange(float(start), float(end), float(score)))
    return ranges


def adaptive_threshold(scores: np.ndarray, deviations: float = 2.0) -> float:
    """``mean + deviations * std`` of the scores: windows that stand out from the rest of the recording.
    ``inf`` (nothing stands out) when the curve is flat: a standard deviation below :data:`FLAT_SPREAD` is rounding
    and model noise over the same sound, not an event."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or float(scores.std()) < FLAT_SPREAD:
        return math.inf
    return float(scores.mean() + deviations * scores.std())


def score_windows(
    text: str,
    starts: np.ndarray,
    ends: np.ndarray,
    embeddings: np.ndarray,
    query: np.ndarray,
    silent: np.ndarray | None = None,
    threshold: float | None = None,
) -> LocateResult:
    """Score window embeddings against a text embedding and find the ranges at or above ``threshold`` (default:
    adaptive over the windows that are not silent). Silent windows never match."""
    scores = embeddings @ query
    silent = np.zeros(scores.shape, dtype=bool) if silent is None else np.asarray(silent, dtype=bool)
    heard = ~silent
    note = None
    if not heard.any():
        used, note = math.inf, SILENT_NOTE
    elif threshold is None:
        used = adaptive_threshold(scores[heard])
        if not math.isfinite(used):
            note = "the similarity is flat over the whole recording: no part stands out (no range)"
    else:
        used = float(threshold)
    ranges = time_ranges(starts[heard], ends[heard], scores[heard], used)
    return LocateResult(text, starts, ends, scores, used, ranges, silent, note)


def locate(
    model,
    source: str | os.PathLike[str] | np.ndarray,
    text: str,
    *,
    sample_rate: int | None = None,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    threshold: float | None = None,
    batch_size: int = 8,
    prefetch: int = 2,
    progress: bool = False,
) -> LocateResult:
    """Where in ``source`` does ``text`` match? Cosine similarity of every window to the text, and the ranges of
    windows at or above ``threshold`` (default: :func:`adaptive_threshold`, windows standing out from the rest).
    Silent windows never match; silent audio gives no range and a ``note``. ``progress``: a bar on stderr."""
    model.warn_unknown([text], "text")
    query = model.embed_text([text])[0]
    starts, ends, embeddings, silent = [], [], [], []
    bar = _window_bar(model, source, window_seconds, hop_seconds, progress)
    try:
        for batch in embed_windows(
            model,
            source,
            sample_rate=sample_rate,
            window_seconds=window_seconds,
            hop_seconds=hop_seconds,
            batch_size=batch_size,
            prefetch=prefetch,
        ):
            starts.append(batch.starts)
            ends.append(batch.ends)
            embeddings.append(batch.embeddings)
            silent.append(batch.silent)
            bar.update(len(batch.starts))
    finally:
        bar.close()
    start_array, end_array, silent_array = np.concatenate(starts), np.concatenate(ends), np.concatenate(silent)
    return score_windows(text, start_array, end_array, np.concatenate(embeddings), query, silent_array, threshold)


def _window_bar(model, source, window_seconds, hop_seconds, enabled: bool):
    """A progress bar over the windows of ``source`` (total from the file header; stderr; shown after 2 s)."""
    from tqdm import tqdm

    total = None
    if enabled and isinstance(source, (str, os.PathLike)):
        from clapkit.inputs import probe_duration

        seconds = probe_duration(str(source))
        window, hop = window_sizes(model, window_seconds, hop_seconds)
        if math.isfinite(seconds):
            samples = seconds * model.sample_rate
            total = max(1, math.ceil(max(samples - window, 0) / hop) + 1)
    from clapkit.jobs import PROGRESS_DELAY_SECONDS

    return tqdm(total=total, unit="window", desc="locate", disable=not enabled, delay=PROGRESS_DELAY_SECONDS,
                dynamic_ncols=True)  # fmt: skip


def plot_similarity(result: LocateResult, path: str | os.PathLike[str], title: str | None = None) -> None:
    """Write a PNG of the similarity over time (window centres), the threshold and the matching ranges."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ClapkitError("plotting needs matplotlib: pip install 'clapkit[plot]'") from None
    centres = (result.starts + result.ends) / 2
    figure, axes = plt.subplots(figsize=(10, 3))
    axes.plot(centres, result.scores, linewidth=1, label="cosine similarity")
    if math.isfinite(result.threshold):
        axes.axhline(result.threshold, color="tab:red", linestyle="--", linewidth=1, label="threshold")
    for span in result.ranges:
        axes.axvspan(span.start, span.end, color="tab:orange", alpha=0.3)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("similarity")
    axes.set_title(title or repr(result.text))
    axes.legend(loc="upper right")
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)


def format_time(seconds: float) -> str:
    """``H:MM:SS.s``."""
    tenths = round(seconds * 10)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    return f"{hours}:{minutes:02d}:{rest // 10:02d}.{rest % 10}"

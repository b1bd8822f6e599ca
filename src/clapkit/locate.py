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

from clapkit.audio.io import prepare_waveform, stream_windows
from clapkit.errors import ClapkitError
from clapkit.files import atomic_write

_DONE = object()


@dataclass
class WindowBatch:
    """Embeddings of consecutive windows: ``starts``/``ends`` in seconds, ``embeddings (n, D)``."""

    starts: np.ndarray
    ends: np.ndarray
    embeddings: np.ndarray


@dataclass(frozen=True)
class TimeRange:
    """A stretch of the recording where the text matches: ``start``/``end`` in seconds, ``score`` the best window's."""

    start: float
    end: float
    score: float


@dataclass
class LocateResult:
    """Similarity over time: one cosine ``scores[i]`` per window ``[starts[i], ends[i])`` (seconds), the
    ``threshold`` used and the merged ``ranges`` of windows at or above it."""

    text: str
    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    threshold: float
    ranges: list[TimeRange]


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

    Files are streamed: decoding runs in a background thread, at most ``prefetch`` batches ahead of the model."""
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
    try:
        while True:
            item = batches.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            starts = np.array([s for s, _ in item], dtype=np.int64)
            lengths = np.array([w.size for _, w in item], dtype=np.int64)
            embeddings = model.embed_waveforms([w for _, w in item], batch_size=len(item))
            yield WindowBatch(starts / rate, (starts + lengths) / rate, embeddings)
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
    ``inf`` (nothing stands out) when all scores are equal."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or float(scores.std()) == 0.0:
        return math.inf
    return float(scores.mean() + deviations * scores.std())


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
) -> LocateResult:
    """Where in ``source`` does ``text`` match? Cosine similarity of every window to the text, and the ranges of
    windows at or above ``threshold`` (default: :func:`adaptive_threshold`, windows standing out from the rest)."""
    query = model.embed_text([text])[0]
    starts, ends, scores = [], [], []
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
        scores.append(batch.embeddings @ query)
    start_array, end_array, score_array = (np.concatenate(x) for x in (starts, ends, scores))
    used = adaptive_threshold(score_array) if threshold is None else float(threshold)
    return LocateResult(
        text, start_array, end_array, score_array, used, time_ranges(start_array, end_array, score_array, used)
    )


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

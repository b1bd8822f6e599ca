"""Public checkpoints and hub repos by name, through ``huggingface_hub`` and its standard cache.

``resolve(NAME)`` finds what ``NAME`` (a name of ``clapkit.public``, a repo id ``ORG/NAME`` or a file in one
``ORG/NAME/FILE.pt``) needs in the local cache, with no network call (``try_to_load_from_cache``); when it is not
there it raises a ``CheckpointError`` giving the command that fetches it. ``download(NAME)`` (``clapkit download``,
``clapkit.load(NAME, download=True)``) fetches the weights and the tokenizer with ``hf_hub_download`` (progress bars
on stderr, resumable: a dropped connection is resumed with a Range request from the partial blob), then checks each
file against its hub hash and loads the weights safely (``weights_only`` / safetensors) before saying it is done; a
file that fails is removed from the cache, so it never looks valid later.

The environment is read at call time: ``HF_HUB_CACHE`` / ``HF_HOME`` (where the cache is), ``HF_HUB_OFFLINE`` (no
download even on request), ``HF_ENDPOINT`` (another hub).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clapkit.errors import CheckpointError
from clapkit.public import TOKENIZERS, PublicCheckpoint, find_public

# files a tokenizer may need (AutoTokenizer reads the ones present; config.json tells it the model type)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "vocab.txt", "spiece.model", "added_tokens.json", "config.json")  # fmt: skip
VOCAB_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model")
ATTEMPTS = 3  # a download interrupted this many times in a row is reported (run again: it resumes)


@dataclass(frozen=True)
class Target:
    """What a name stands for on the hub: a repo and either one weights file or the whole transformers directory."""

    name: str
    repo: str
    filename: str | None
    entry: PublicCheckpoint | None = None

    @property
    def tokenizer_repo(self) -> str | None:
        return self.entry.tokenizer_repo if self.entry is not None else None


@dataclass(frozen=True)
class Resolved:
    path: Path  # the weights file, or the snapshot directory of a transformers repo
    tokenizer: Path | None  # a cached tokenizer directory, when the checkpoint needs one and it is there


def target_for(name: str) -> Target:
    entry = find_public(name)
    if entry is not None:
        return Target(entry.name, entry.repo, entry.filename, entry)
    parts = name.split("/")
    if len(parts) >= 3:
        return Target(name, "/".join(parts[:2]), "/".join(parts[2:]))
    return Target(name, name, None)


def cache_dir() -> str:
    """The hub cache huggingface_hub uses, from the environment as it is now."""
    env = os.environ
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return os.path.expanduser(os.path.expandvars(env[var]))
    if env.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(env["HF_HOME"])), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE") or bool(constants.HF_HUB_OFFLINE)


def fetch_command(name: str) -> str:
    return f"clapkit download {name}"


# ---------------------------------------------------------------------------------------------- the cache, offline
def cached_file(repo: str, filename: str) -> Path | None:
    """``filename`` of ``repo`` at ``main`` in the local cache (no network), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir())
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def cached_tokenizer_dir(repo: str) -> Path | None:
    """The cached snapshot directory of tokenizer repo ``repo`` when it holds a vocabulary, else None."""
    for name in VOCAB_FILES:
        found = cached_file(repo, name)
        if found is not None:
            return found.parent
    return None


def _cached_directory(repo: str) -> Path | None:
    """The snapshot directory of a transformers repo whose config.json and complete weights are cached."""
    from clapkit.checkpoints.hf import WEIGHT_FILES

    config = cached_file(repo, "config.json")
    if config is None:
        return None
    for name in WEIGHT_FILES:
        weights = cached_file(repo, name)
        if weights is not None and weights.parent == config.parent:
            if name.endswith(".index.json") and not all((config.parent / s).is_file() for s in _shards(weights)):
                continue
            return config.parent
    return None


def _shards(index: Path) -> list[str]:
    try:
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{index}: not a readable weights index ({exc})") from None


def _cached(target: Target) -> Resolved | None:
    path = cached_file(target.repo, target.filename) if target.filename else _cached_directory(target.repo)
    if path is None:
        return None
    tokenizer = cached_tokenizer_dir(target.tokenizer_repo) if target.tokenizer_repo else None
    return Resolved(path, tokenizer)


def resolve(name: str, *, download: bool = False, quiet: bool = False, trust_pickle: bool = False) -> Resolved:
    """The local files for ``name``, from the cache; fetched first only when ``download`` is True."""
    target = target_for(name)
    if download:
        return _download(target, quiet=quiet, trust_pickle=trust_pickle)
    found = _cached(target)
    if found is None:
        what = f"{target.repo}/{target.filename}" if target.filename else f"the repo {target.repo}"
        local = "" if target.entry is not None else "no such local file or directory, and "
        raise CheckpointError(
            f"{name}: {local}not in the Hugging Face cache ({cache_dir()}; looked for {what}). clapkit never downloads "
            f"unless asked: fetch it once with `{fetch_command(name)}` (or clapkit.load({name!r}, download=True)), "
            "then every command takes --model " + name + " offline. `clapkit models --public` lists the names")
    return found


def download(name: str, *, quiet: bool = False, trust_pickle: bool = False) -> Resolved:
    """Fetch ``name``'s weights and tokenizer into the cache, verify them, and return where they are."""
    return resolve(name, download=True, quiet=quiet, trust_pickle=trust_pickle)


def download_tokenizer(repo: str, *, quiet: bool = False) -> Path:
    """Fetch a tokenizer repo's tokenizer files (``clapkit download roberta-base``)."""
    with _progress(quiet):
        fetched = [p for p in (_fetch(repo, f, quiet, required=False) for f in TOKENIZER_FILES) if p is not None]
    if not any(p.name in VOCAB_FILES for p in fetched):
        raise CheckpointError(f"{repo}: the repo has none of the tokenizer files {', '.join(VOCAB_FILES)}")
    for path in fetched:
        _check_hash(path)
    return fetched[0].parent


# ------------------------------------------------------------------------------------------------------ downloads
def _download(target: Target, *, quiet: bool, trust_pickle: bool) -> Resolved:
    if offline():
        raise CheckpointError(f"{target.name}: HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it (or "
                              "fetch the files on a machine with access and copy its Hugging Face cache here)")
    if target.entry is None and target.repo in TOKENIZERS.values():
        return Resolved(download_tokenizer(target.repo, quiet=quiet), None)
    with _progress(quiet):
        if target.filename:
            weights = [_fetch(target.repo, target.filename, quiet)]
            path = weights[0]
        else:
            weights, path = _fetch_directory(target.repo, quiet)
    _verify(target, path, weights, trust_pickle)
    tokenizer = None
    if target.tokenizer_repo:
        tokenizer = download_tokenizer(target.tokenizer_repo, quiet=quiet)
    if not quiet:
        print(f"clapkit: {target.name} is ready in {path} (use --model {target.name})", file=sys.stderr)
    return Resolved(path, tokenizer)


def _fetch_directory(repo: str, quiet: bool) -> tuple[list[Path], Path]:
    """config.json, the weights (safetensors preferred, shards followed), the processor and tokenizer files."""
    from clapkit.checkpoints.hf import WEIGHT_FILES

    config = _fetch(repo, "config.json", quiet)
    weights: list[Path] = []
    for name in WEIGHT_FILES:
        found = _fetch(repo, name, quiet, required=False)
        if found is None:
            continue
        weights = [found]
        if name.endswith(".index.json"):
            weights += [_fetch(repo, shard, quiet) for shard in _shards(found)]
        break
    if not weights:
        raise CheckpointError(f"{repo}: the repo has config.json but none of the weights files "
                              f"{', '.join(WEIGHT_FILES)}")
    for name in ("preprocessor_config.json", *TOKENIZER_FILES):
        if name != "config.json":
            _fetch(repo, name, quiet, required=False)
    return [config, *weights], config.parent


def _fetch(repo: str, filename: str, quiet: bool, *, required: bool = True) -> Path | None:
    """``hf_hub_download`` with clear errors; a dropped connection is retried (the hub client resumes the partial
    blob with a Range request)."""
    import requests
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    where = f"{repo}/{filename}"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return Path(hf_hub_download(repo, filename, cache_dir=cache_dir(), endpoint=os.environ.get("HF_ENDPOINT")))
        except EntryNotFoundError:
            if not required:
                return None
            raise CheckpointError(f"{where}: the repo has no such file") from None
        except RepositoryNotFoundError:
            raise CheckpointError(f"{where}: the hub has no repo {repo!r} (or it is private or gated: log in with "
                                  "`hf auth login`); public names: `clapkit models --public`") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                requests.exceptions.Timeout, LocalEntryNotFoundError) as exc:  # fmt: skip
            if attempt == ATTEMPTS:
                raise CheckpointError(
                    f"{where}: the download was interrupted {ATTEMPTS} times ({type(exc).__name__}); run the same "
                    "command again when the network is back: it resumes from the part already fetched") from None
            if not quiet:
                print(f"clapkit: {where}: connection lost ({type(exc).__name__}); resuming", file=sys.stderr)
        except HfHubHTTPError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{where}: the hub refused the download ({first}); check the name (`clapkit "
                                  "models --public`) and, for a private or gated repo, your HF token") from None
        except OSError as exc:
            raise CheckpointError(f"{where}: could not be downloaded ({exc})") from None
    raise AssertionError("unreachable")


@contextmanager
def _progress(quiet: bool):
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    switch = quiet and not are_progress_bars_disabled()
    if switch:
        disable_progress_bars()
    try:
        yield
    finally:
        if switch:
            enable_progress_bars()


# ------------------------------------------------------------------------------------------------- verification
def _verify(target: Target, path: Path, files: list[Path], trust_pickle: bool) -> None:
    """Every file matches its hub hash and the weights load safely; otherwise they leave the cache. A file that is
    exactly the hub's but holds Python objects beyond tensors stays (it is not damaged): loading it needs
    ``trust_pickle``, which the error says."""
    from clapkit.checkpoints.io import TRUST_HINT

    try:
        for file in files:
            _check_hash(file)
    except CheckpointError as exc:
        raise _refuse(target, files, exc) from None
    try:
        _load_check(target, path, trust_pickle)
    except CheckpointError as exc:
        if TRUST_HINT in str(exc):
            raise CheckpointError(
                f"{target.name}: downloaded and identical to the hub's file (kept in the cache), but {exc} "
                f"(`{fetch_command(target.name)} --trust-pickle` checks it that way)") from None
        raise _refuse(target, files, exc) from None


def _refuse(target: Target, files: list[Path], reason: Exception) -> CheckpointError:
    for file in files:
        _remove_from_cache(file)
    return CheckpointError(f"{target.name}: the downloaded file was refused and removed from the cache: {reason}. "
                           f"Run `{fetch_command(target.name)}` again to fetch it afresh")


def _check_hash(path: Path) -> None:
    """Compare a blob with its name: hub LFS blobs are named by their sha256, other files by their git blob sha1."""
    blob = Path(os.path.realpath(path))
    expected = blob.name
    if len(expected) == 64:
        digest = hashlib.sha256()
    elif len(expected) == 40:
        digest = hashlib.sha1()
        digest.update(f"blob {blob.stat().st_size}\0".encode())
    else:
        return  # not a content hash (another hub's ETag): the load check still runs
    try:
        int(expected, 16)
    except ValueError:
        return
    with open(blob, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise CheckpointError(f"{path.name}: content hash {digest.hexdigest()[:12]}... differs from the hub's "
                              f"{expected[:12]}... (a damaged or mixed-up download)")


def _load_check(target: Target, path: Path, trust_pickle: bool) -> None:
    from clapkit.checkpoints import load_weights

    if target.entry is not None and target.entry.family == "clapcap":
        from clapkit.checkpoints.io import extract_state_dict, read_checkpoint
        from clapkit.checkpoints.msclap import is_clapcap

        if not is_clapcap(extract_state_dict(read_checkpoint(path, trust_pickle=trust_pickle), str(path))):
            raise CheckpointError(f"{path.name}: not MS-CLAP's captioning checkpoint (clap.* and gpt.* keys)")
        return
    load_weights(path, trust_pickle=trust_pickle)


def _remove_from_cache(path: Path) -> None:
    blob = Path(os.path.realpath(path))
    for item in {path, blob}:
        try:
            item.unlink()
        except FileNotFoundError:
            pass

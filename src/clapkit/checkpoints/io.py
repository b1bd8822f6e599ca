"""Safe checkpoint I/O: safetensors, or ``torch.load(weights_only=True)``; atomic writes."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clapkit.errors import CheckpointError, os_reason
from clapkit.files import atomic_write

TRUST_HINT = (
    "Full unpickling can run arbitrary code hidden in the file, so clapkit refuses it by default. If you trust where "
    "the file came from, pass trust_pickle=True (CLI: --trust-pickle) once, and save a safe copy with "
    "`clapkit convert SRC DST --to clapkit`."
)


def _head(path: Path) -> bytes:
    """The first bytes of a checkpoint file; a clear error for a file this user cannot read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(8)
    except OSError as exc:
        raise CheckpointError(f"{path}: {os_reason(exc)}") from None


def looks_like_torch_file(head: bytes) -> bool:
    """``torch.save`` writes a zip archive (``PK``), older versions a pickle (protocol opcode ``0x80``)."""
    return head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def damaged_safetensors(path: Path, exc: BaseException) -> CheckpointError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(
        f"{path}: not a valid safetensors file (truncated download?): {detail}. Download or copy it again"
    )


def read_json(path: Path, what: str = "config.json") -> Any:
    """A JSON file of a checkpoint directory; a clear error when it is unreadable or not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"{path}: {os_reason(exc)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path}: the {what} is not valid JSON ({exc}); a damaged or partial copy? Copy the checkpoint again"
        ) from None


def numpy_scalar_globals() -> list:
    """The numpy constructors of plain numpy scalars (``np.float64(0.9)``, ``np.int64(3)``) and their dtypes: data,
    never code. Training scripts store such scalars beside the weights (LAION's checkpoints, aiSFX's), so a
    ``weights_only`` load allows exactly these and nothing else."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    names = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
    return [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype, *(type(np.dtype(n)) for n in names)]


def read_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> Any:
    """Read a checkpoint file without running code from it (unless ``trust_pickle``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"{path}: checkpoint file not found. Load a public checkpoint by name instead (`clapkit download "
            "630k-audioset-best`, then clapkit.load('630k-audioset-best'); `clapkit models --public` lists them), or "
            "copy the checkpoint to this path (LAION-CLAP .pt, MS-CLAP .pth, a Hugging Face CLAP directory or a "
            "clapkit directory; see docs/checkpoints.md), or pass weights='random' for an untrained model"
        )
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; pass the weights file inside it or load the directory itself")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty (an interrupted download or copy?)")
    head = _head(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types
            raise damaged_safetensors(path, exc) from None
    if not looks_like_torch_file(head):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (its first bytes are neither the zip archive torch.save writes nor a "
            "pickle): a damaged download, or another kind of file? Download or copy it again"
        )
    try:
        with torch.serialization.safe_globals(numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # not objects beyond tensors: broken pickle data
            raise CheckpointError(
                f"{path}: not a valid PyTorch checkpoint: its pickle data is damaged (truncated download?). "
                "Download or copy it again"
            ) from None
        if not trust_pickle:
            lines = [line for line in str(exc).splitlines() if "Unsupported global" in line]
            first = lines[0].split("Unsupported global:", 1)[-1].split(" was not")[0].strip()
            first = f"unsupported global {first}" if first else "unsupported object"
            raise CheckpointError(
                f"{path}: this file holds Python objects beyond tensors ({first}). {TRUST_HINT}"
            ) from None
    except OSError as exc:
        raise CheckpointError(f"{path}: {os_reason(exc)}") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a valid PyTorch checkpoint (truncated download?): {first}. Download or copy it again"
        ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)  # the caller opted in explicitly
    except Exception as exc:
        raise CheckpointError(f"{path}: could not be read even with full unpickling ({exc})") from None


def extract_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The tensor mapping of a checkpoint object: a plain state dict, or one under 'state_dict' / 'model'."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "module"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(
        f"{source}: no state dict found (expected a mapping of tensors, or one under 'state_dict' or 'model'); "
        f"found {type(obj).__name__}" + (f" with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, Mapping) else "")
    )


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_state_dict_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                           assign: bool = False) -> None:
    """Load weights; every weight of the module must be given and nothing unknown may be left over. ``assign``: the
    module's tensors become the given ones (in the module's dtype, contiguous) instead of being copied into: for a
    module built with ``clapkit.models.empty.parameters_on_meta``."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if tuple(expected[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                shown = ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8} more)" if len(keys) > 8 else "")
                parts.append(f"{len(keys)} {label}: {shown}")
        name = getattr(getattr(module, "config", None), "name", type(module).__name__)
        raise CheckpointError(
            f"{source}: weights do not fit model {name!r}; "
            + "; ".join(parts)
            + ". Check the model name matches the checkpoint (or pass only the file to auto-detect)."
        )
    if assign:
        state_dict = {k: v.to(expected[k].dtype).contiguous() for k, v in state_dict.items()}
    module.load_state_dict(state_dict, strict=True, assign=assign)

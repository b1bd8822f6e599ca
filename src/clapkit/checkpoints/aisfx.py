"""aiSFX (Ma & Lerch, ISMIR 2022; PyPI ``aisfx``, CC BY 4.0): its sound-effects CNN as a clapkit audio tower.

The package ships ``aisfx/models/checkpoint.pth``: a pickle of ``(state_dict, datasets)`` whose only non-tensor
content is numpy scalars in ``datasets``. It is read with ``torch.load(weights_only=True)`` plus an allowlist of
exactly the numpy scalar/dtype constructors it needs, so no code from the file can run. Only ``embedding_net.*``
(the 4.7 M-parameter CNN) is kept; the per-dataset classifier heads ``fc.*`` are dropped.

The package itself is never imported (its pins break installation and its ``__init__`` needs librosa): install it
with ``pip install --no-deps aisfx==0.1.2`` and the file is found through the import system, or pass the ``.pth``
or the downloaded ``.whl`` directly.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import torch

from clapkit.checkpoints.io import numpy_scalar_globals
from clapkit.errors import CheckpointError

CHECKPOINT_IN_PACKAGE = "models/checkpoint.pth"
HOW_TO_GET = ("install it offline-safe with `pip install --no-deps aisfx==0.1.2` (PyPI, 23 MB, CC BY 4.0) or "
              "`pip download --no-deps aisfx==0.1.2` and pass the .whl")


def find_aisfx_checkpoint() -> Path:
    """The checkpoint inside the installed ``aisfx`` package, found without importing it."""
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the aisfx package is not installed: {HOW_TO_GET}")
    path = Path(list(spec.submodule_search_locations)[0]) / CHECKPOINT_IN_PACKAGE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the installed aisfx package; reinstall: {HOW_TO_GET}")
    return path


def read_aisfx_tower(source: str | Path | None = None) -> dict[str, torch.Tensor]:
    """aiSFX's CNN weights with ``SfxCNN`` keys (``conv_block1.conv1.weight`` ...) from the installed package, its
    ``checkpoint.pth``, or its wheel."""
    path = Path(source) if source is not None else find_aisfx_checkpoint()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; {HOW_TO_GET}")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            try:
                data = wheel.read(f"aisfx/{CHECKPOINT_IN_PACKAGE}")
            except KeyError:
                raise CheckpointError(
                    f"{path}: no aisfx/{CHECKPOINT_IN_PACKAGE} inside; is it the aisfx wheel?") from None
        handle: io.BytesIO | Path = io.BytesIO(data)
    else:
        handle = path
    try:
        with torch.serialization.safe_globals(numpy_scalar_globals()):
            obj = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not aiSFX's checkpoint, or it holds more than tensors and numpy scalars "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    state = obj[0] if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], dict) else obj
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected (state_dict, datasets), got {type(obj).__name__}")
    prefix = "embedding_net."
    tower = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not tower:
        raise CheckpointError(f"{path}: no {prefix}* weights; is it aiSFX's checkpoint?")
    return tower

"""A model's identity: the one definition of "the same model" for stores, indexes, search and the eval cache.

Two models are the same when their weights and their whole config hash alike. The config includes the audio front
end (sample rate, clip length, mel settings, truncation): the same weights behind another front end give other
embeddings, so they are another model (an index built with one refuses queries from the other). It also includes
the name and description, so a config renamed by hand counts as another model too: cautious, never wrong.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

IDENTITY_KEYS = ("fingerprint", "config_sha256")  # what must agree; the other fields say how to load it again


def weights_fingerprint(module: Any) -> str:
    """A short hash of a module's weights (names, shapes, dtypes and a strided sample of every tensor's values).

    Identical weights always give the same fingerprint, in any process; different checkpoints differ with
    overwhelming probability. Cheap (well under a second for the largest CLAP models).
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        values = tensor.detach().to("cpu").contiguous().reshape(-1)
        step = max(1, values.numel() // 4096)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(values[::step].float().numpy().tobytes())
    return digest.hexdigest()[:16]


def config_fingerprint(config: Any) -> str:
    """sha256 (16 hex digits) of the config as sorted JSON: front end, towers, heads, name."""
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_identity(model: Any, source: str, weights: str | None = None, tokenizer: str | None = None) -> dict:
    """What stores and indexes record about the model: how to load it again and how to recognise it."""
    return {
        "name": model.config.name,
        "source": str(source),
        "weights": None if weights is None else str(weights),
        "tokenizer": None if tokenizer is None else str(tokenizer),
        "fingerprint": weights_fingerprint(model.module),
        "config_sha256": config_fingerprint(model.config),
    }


def model_fingerprint(model: Any) -> str:
    """One string for the identity (weights then config fingerprint), e.g. to name cache files."""
    return weights_fingerprint(model.module) + config_fingerprint(model.config)


def same_model(recorded: dict, identity: dict) -> bool:
    """True when two identities (:func:`model_identity`) have the same weights and config."""
    return all(recorded.get(key) == identity.get(key) for key in IDENTITY_KEYS)


def describe_model(identity: dict) -> str:
    return (
        f"{identity.get('name')!r} (source {identity.get('source')!r}, weights {identity.get('weights')!r}, "
        f"fingerprint {identity.get('fingerprint')})"
    )

"""Rewrite a checkpoint in another family's format (``clapkit convert``): weights unchanged, names and layout new."""

from __future__ import annotations

from pathlib import Path

from clapkit.checkpoints import FAMILIES, load_state_dict_strict, load_weights
from clapkit.errors import ConfigError
from clapkit.models.clap import ClapNetwork


def convert_checkpoint(source: str | Path, destination: str | Path, to: str, *, trust_pickle: bool = False) -> Path:
    """Read any checkpoint clapkit knows, check its weights fit the detected model, write it in format ``to``: the
    name of a family with a ``save`` (``clapkit.checkpoints.WRITABLE``)."""
    writers = {family.name: family.save for family in FAMILIES if family.save is not None}
    if to not in writers:
        raise ConfigError(f"unknown checkpoint format {to!r}; known: {', '.join(writers)}")
    config, state_dict = load_weights(source, trust_pickle=trust_pickle)
    module = ClapNetwork(config)
    load_state_dict_strict(module, state_dict, str(source))  # a broken source fails here, before anything is written
    return writers[to](destination, config, module.state_dict())

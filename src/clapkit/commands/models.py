"""``clapkit models`` and ``clapkit info``."""

from __future__ import annotations

import json

from clapkit.commands import add_model_options, load_model


def cmd_models(args) -> int:
    from clapkit.registry import get_config, list_models

    print(f"{'default':28s} clapkit's trained offline model (weights ship with clapkit; docs/default-model.md)")
    for name in list_models():
        print(f"{name:28s} {get_config(name).description}")
    return 0


def cmd_info(args) -> int:
    model = load_model(args)
    params = sum(p.numel() for p in model.module.parameters())
    print(
        json.dumps(
            {
                "name": model.config.name,
                "family": model.config.family,
                "parameters": params,
                "sample_rate": model.sample_rate,
                "clip_seconds": model.config.frontend.clip_seconds,
                "embedding_dim": model.config.joint_dim,
                "tokenizer": model.tokenizer is not None,
            },
            indent=2,
        )
    )
    return 0


def add_parsers(sub) -> None:
    sub.add_parser("models", help="list the named model configs").set_defaults(func=cmd_models)
    info = sub.add_parser("info", help="describe a model or checkpoint")
    add_model_options(info)
    info.set_defaults(func=cmd_info)

"""``clapkit models`` and ``clapkit info``."""

from __future__ import annotations

import json

from clapkit.commands import add_model_options, load_model


def cmd_models(args) -> int:
    from clapkit.registry import get_config, list_models

    if args.public:
        return _print_public(args.json, args.markdown)
    print(f"{'default':28s} clapkit's trained offline model (weights ship with clapkit; docs/default-model.md)")
    for name in list_models():
        print(f"{name:28s} {get_config(name).description}")
    return 0


def _print_public(as_json: bool, as_markdown: bool) -> int:
    import dataclasses

    from clapkit.public import PUBLIC, markdown_table

    if as_markdown:
        print(markdown_table(), end="")
        return 0
    if as_json:
        print(json.dumps([dataclasses.asdict(e) for e in PUBLIC], indent=2))
        return 0
    for e in PUBLIC:
        where = f"{e.repo}/{e.filename}" if e.filename else f"{e.repo} (transformers directory)"
        print(f"{e.name}\n    hub: {where}; family {e.family}, architecture {e.architecture}, tokenizer "
              f"{e.tokenizer}\n    licence: {e.licence}\n    good for: {e.good_for}\n    numbers: {e.numbers}")
    print("\nFetch one with `clapkit download NAME`, then pass --model NAME (loads offline from the HF cache)")
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
    models = sub.add_parser("models", help="list the named model configs (--public: the public checkpoints)")
    models.add_argument("--public", action="store_true", help="public checkpoints loadable by name from the hub cache")
    models.add_argument("--json", action="store_true", help="with --public: the table as JSON")
    models.add_argument("--markdown", action="store_true", help="with --public: the table as Markdown")
    models.set_defaults(func=cmd_models)
    info = sub.add_parser("info", help="describe a model or checkpoint")
    add_model_options(info)
    info.set_defaults(func=cmd_info)

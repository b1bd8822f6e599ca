"""``clapkit recipe default-model``: rebuild clapkit's default model offline (docs/default-model.md)."""

from __future__ import annotations

import argparse
import json
import logging


def run_default_model(args) -> int:
    from clapkit.recipes.build import SHIPPED, VIEWS, run_recipe
    from clapkit.recipes.headtrain import variant

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    changes = {"steps": args.steps} if args.steps else {}
    if args.balance_power is not None:
        changes["balance_power"] = args.balance_power
    if args.input_dropout is not None:
        changes["input_dropout"] = args.input_dropout
    options = variant(SHIPPED, seed=args.seed, **changes)
    numbers = run_recipe(args.corpus, args.work, options=options, views=args.views or VIEWS, aisfx=args.aisfx,
                         install=args.install, force=args.force, compare=args.compare, baseline=args.baseline,
                         quiet=args.quiet, compare_unfreeze=args.compare_unfreeze,
                         end_to_end=args.end_to_end, ship_all=args.ship_all,
                         backgrounds=not args.no_backgrounds, room=args.room, cross_source=args.cross_source)
    keys = [k for k in ("v1", "v2", "variants", "unfreeze", "cross_source_everyday", "training", "shipped")
            if k in numbers]
    print(json.dumps({k: numbers[k] for k in keys}, indent=2, default=float))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    recipe = sub.add_parser("recipe", help="reproducible recipes (the default model)")
    recipes = recipe.add_subparsers(dest="recipe", required=True)
    default = recipes.add_parser(
        "default-model", help="split, cached features, head training, evaluation and export of the default model "
        "(CPU, offline)")
    default.add_argument("--corpus", required=True, help="corpus v2: the folder holding meta.csv (docs/corpus.md)")
    default.add_argument("--work", default="runs/default-model", help="work folder (default: %(default)s)")
    default.add_argument("--steps", type=int, help="head training steps (default: the recipe's)")
    default.add_argument("--balance-power", type=float,
                         help="classes drawn in proportion to (their clips) ** P, packages balanced within a class "
                              "(0: every class equally often; default: the recipe's)")
    default.add_argument("--input-dropout", type=float,
                         help="dropout on the standardised aiSFX features while training the heads (0: none; "
                              "default: the recipe's)")
    default.add_argument("--views", type=int, help="cached aiSFX views per training clip (default: the recipe's)")
    default.add_argument("--compare", action="store_true",
                         help="also train and measure the variants (head types, hubness, augmentation, sampling)")
    default.add_argument("--compare-unfreeze", action="store_true",
                         help="also measure a short run with aiSFX's top block trained against it frozen")
    default.add_argument("--end-to-end", action="store_true",
                         help="measure the exported model by re-embedding every held-out clip (default: the cached "
                         "features, spot-checked on 64 clips)")
    default.add_argument("--baseline", help="a shipped default-model folder (config.json + model.safetensors) to "
                         "measure on the same split, e.g. a copy of v1")
    default.add_argument("--aisfx", help="aiSFX checkpoint.pth or wheel (default: the installed aisfx package)")
    default.add_argument("--ship-all", action="store_true",
                         help="after measuring on the split, retrain the exported (and installed) model with the same "
                         "options on every clip, held-out ones included (the split model stays in "
                         "WORK/default-model-split)")
    default.add_argument("--no-backgrounds", action="store_true",
                         help="noisy views get coloured noise only (default: half of them real ambience clips)")
    default.add_argument("--room", action="store_true",
                         help="hear some augmented views in a synthetic room (reverberation; measured option)")
    default.add_argument("--cross-source", action="store_true",
                         help="also measure naming everyday sounds across packages (5 package folds; ~5-10 min)")
    default.add_argument("--install", action="store_true", help="copy the result into the installed package")
    default.add_argument("--force", action="store_true", help="redo every step (default: reuse cached features)")
    default.add_argument("--seed", type=int, default=0)
    default.add_argument("--quiet", action="store_true", help="no progress bars")
    default.set_defaults(func=run_default_model)

"""``clapkit train --config F [overrides]``: train or fine-tune a CLAP model (see ``clapkit.train``).

Overrides: ``key=value`` or ``--section.key value`` (``optim.lr=3e-4 --max_steps 2000``). Several processes:
``torchrun --nproc_per_node N -m clapkit.cli train --config F``.
"""

from __future__ import annotations

import argparse
import logging
import os


def cmd_train(args: argparse.Namespace) -> int:
    from clapkit.train.config import TrainConfig, apply_overrides, dumps
    from clapkit.train.loop import train

    config_path, overrides = _take_config(args.config, list(args.overrides))
    config = TrainConfig.from_file(config_path) if config_path else TrainConfig()
    config = apply_overrides(config, overrides)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.print_config:
        print(dumps(config), end="")
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = train(config)
    if rank == 0:
        print(f"trained to step {result.step}; last checkpoint {result.last_checkpoint}; metrics and curves in "
              f"{result.output_dir}")
    return 0


def _take_config(config: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """``--config F`` may also come after overrides (argparse leaves it among them)."""
    rest = []
    while overrides:
        item = overrides.pop(0)
        if item == "--config" and overrides:
            config = overrides.pop(0)
        elif item.startswith("--config="):
            config = item.split("=", 1)[1]
        else:
            rest.append(item)
    return config, rest


def add_parsers(sub) -> None:
    parser = sub.add_parser("train", help="train or fine-tune a CLAP model from a YAML/JSON config",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="training config (.yaml/.yml or .json); defaults apply where it is silent")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs=argparse.REMAINDER,
                        help="key=value or --section.key value overrides, applied in order")
    parser.set_defaults(func=cmd_train)

"""``clapkit convert SRC DST --to FORMAT``: rewrite a checkpoint in another family's format (``checkpoints.WRITABLE``).

The weights are carried over unchanged (only their names and the q/k/v split change), so every target loads to the
same embeddings. What a target format needs but a source may not have is regenerated or filled, and said so:

- ``laion``: laion_clap's model keeps its torchlibrosa front end in the state dict
  (``spectrogram_extractor.stft.conv_real/conv_imag.weight``, ``logmel_extractor.melW``): regenerated exactly from
  the front-end config with torchlibrosa's formulas. The ``audio_transform``/``text_transform`` MLPs are used only by
  LAION's training loss (``mlp_loss``) and no other format stores them: they are written freshly initialised (seeded,
  PyTorch's ``nn.Linear`` distribution). ``text_branch.embeddings.position_ids`` is written because laion_clap's
  ``load_ckpt`` deletes it unconditionally. HTSAT's unused AudioSet head (``tscam_conv``/``head``) is zero when the
  source was a Hugging Face checkpoint, which has none.
- ``hf``: ``config.json`` + ``preprocessor_config.json`` + ``model.safetensors`` for ``transformers.ClapModel`` /
  ``ClapFeatureExtractor.from_pretrained`` (HTSAT + RoBERTa models only). No tokenizer files are written.
- ``clapkit``: ``config.json`` + ``model.safetensors``, as ``model.save(dir)``.
- ``msclap``: ``{'model': state_dict}`` as msclap's ``CLAPWrapper`` reads it (MS-CLAP models only).
"""

from __future__ import annotations

import argparse

from clapkit.checkpoints import WRITABLE
from clapkit.checkpoints.convert import convert_checkpoint

FORMATS = WRITABLE  # the families clapkit can write, from their records


def cmd_convert(args: argparse.Namespace) -> int:
    out = convert_checkpoint(args.source, args.destination, args.to, trust_pickle=args.trust_pickle)
    print(f"wrote {out} ({args.to})")
    return 0


def add_parsers(sub) -> None:
    parser = sub.add_parser(
        "convert",
        help=f"rewrite a checkpoint in another format ({', '.join(FORMATS)}); weights unchanged",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="a checkpoint file or directory of any family clapkit loads")
    parser.add_argument("destination", help="output: a directory (clapkit, hf) or a file (laion .pt, msclap .pth)")
    parser.add_argument("--to", required=True, choices=FORMATS)
    parser.add_argument("--trust-pickle", action="store_true", help="allow full unpickling of a trusted source")
    parser.set_defaults(func=cmd_convert)

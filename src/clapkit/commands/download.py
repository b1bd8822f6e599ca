"""``clapkit download NAME``: fetch a public checkpoint or hub repo (and its tokenizer) into the Hugging Face cache."""

from __future__ import annotations


def cmd_download(args) -> int:
    from clapkit.hub import download

    for name in args.names:
        resolved = download(name, quiet=args.quiet, trust_pickle=args.trust_pickle)
        print(resolved.path)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "download",
        help="fetch public checkpoints (`clapkit models --public`), hub repos or tokenizers into the HF cache",
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="e.g. 630k-audioset-best, laion/clap-htsat-unfused, gpt2")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--trust-pickle", action="store_true",
                   help="verify a trusted file that needs full unpickling (refused by default)")
    p.set_defaults(func=cmd_download)

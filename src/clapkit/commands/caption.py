"""``clapkit caption FILES...``: a caption for every audio file (MS-CLAP's captioning model, clapcap).

Captions go to stdout (an aligned table, or one JSON object per line with ``--json``); progress and the files that
were skipped (with the reason) go to stderr. Bad files never stop the job.
"""

from __future__ import annotations

import argparse
import json

from clapkit.commands import add_model_options, load_model, parse_extensions, report_failures
from clapkit.errors import ClapkitError
from clapkit.inputs import AUDIO_EXTENSIONS


def cmd_caption(args: argparse.Namespace) -> int:
    from clapkit.captioning import DecodingOptions, caption_files
    from clapkit.commands.inference import _write_rows

    if not args.paths and not args.files_from:
        raise ClapkitError("no inputs: give audio files, folders or patterns, or --files-from FILE")
    model = load_model(args)
    options = DecodingOptions(args.beam_size, args.entry_length, args.temperature)
    extensions = parse_extensions(args.ext)
    result = caption_files(model, args.paths, options, files_from=args.files_from, extensions=extensions,
                           progress=not args.quiet)
    report_failures(result.failures)
    if args.json:
        for path, caption in zip(result.paths, result.captions):
            print(json.dumps({"path": path, "caption": caption}))
    else:
        _write_rows("table", ["path", "caption"], [[p, c] for p, c in zip(result.paths, result.captions)], {})
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("caption", help="write a caption for each audio file (MS-CLAP clapcap model)")
    parser.add_argument("paths", nargs="*", help="audio files, folders (searched recursively) or glob patterns")
    parser.add_argument("--files-from", metavar="FILE", help="a text file listing inputs, one per line")
    parser.add_argument("--ext", default=",".join(e[1:] for e in AUDIO_EXTENSIONS),
                        help="extensions taken from folders and patterns (default: %(default)s)")
    add_model_options(parser, default=None)
    parser.add_argument("--beam-size", type=int, default=5, help="beams of the search (default: 5; 1 = greedy)")
    parser.add_argument("--entry-length", type=int, default=67, help="most tokens of a caption (default: 67)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default: 1.0)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line: {path, caption}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=cmd_caption)

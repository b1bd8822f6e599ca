"""``clapkit index build | add | remove | info`` and ``clapkit serve``: a searchable sound library in a browser."""

from __future__ import annotations

import argparse
import json
import sys

from clapkit.commands import (
    DEFAULT_MODEL,
    absolute_if_path,
    add_model_options,
    add_quiet,
    load_model,
    positive_int,
    require_some,
)
from clapkit.errors import ClapkitError
from clapkit.inputs import AUDIO_EXTENSIONS, parse_extensions

FROM_INDEX = "(the index's model)"


def _model_for(args: argparse.Namespace, index=None):
    """The model of ``args`` (seeded for --weights random), or the index's recorded one when --model is left out."""
    from clapkit.index.search import load_index_model

    if args.model == FROM_INDEX and index is None:  # a new index: the default model, as every command
        args.model = DEFAULT_MODEL
    if args.model == FROM_INDEX:
        return load_index_model(index, device=args.device, trust_pickle=args.trust_pickle)
    return load_model(args)


def _report(report, verb: str) -> None:
    for failure in report.failures[:20]:
        print(f"  skipped {failure.source}: {failure.reason}", file=sys.stderr)
    if len(report.failures) > 20:
        print(f"  ... and {len(report.failures) - 20} more", file=sys.stderr)
    print(
        f"{verb} {report.directory}: {report.items} sound(s), {report.kind} search; {len(report.added)} added "
        f"({report.embedded} embedded now, {report.reused} from stored embeddings), {len(report.removed)} removed, "
        f"{len(report.failures)} failed, in {report.seconds:.1f} s",
        file=sys.stderr,
    )


def _update(args: argparse.Namespace, directory: str, remove_missing: bool, verb: str) -> int:
    from clapkit.index import SoundIndex, build_index

    if not args.paths and not args.files_from:
        raise ClapkitError("no inputs: give audio files, folders or patterns, or --files-from FILE")
    existing = SoundIndex.open(directory) if SoundIndex.exists(directory) else None
    model = _model_for(args, existing)
    recorded = args.model == FROM_INDEX
    report = build_index(
        model,
        args.paths,
        directory,
        model_source=None if recorded else absolute_if_path(args.model),
        weights=None if recorded else absolute_if_path(args.weights),
        tokenizer=None if recorded else absolute_if_path(args.tokenizer),
        store=getattr(args, "store", None),
        files_from=args.files_from,
        extensions=parse_extensions(args.ext),
        remove_missing=remove_missing,
        approximate_from=getattr(args, "approximate_from", None),
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
        extra_info={"seed": args.seed} if args.weights == "random" else None,
    )
    _report(report, verb)
    require_some(report.items, report.failures, "indexed")
    if getattr(args, "captions", None):
        _captions(args, model, directory)
    return 0


INDEX_MODEL = "(the index's model)"


def _captions(args: argparse.Namespace, model, directory: str) -> None:
    """Caption the index's items that have no caption yet, with ``--captions MODEL`` or the index's own model."""
    import clapkit
    from clapkit.captioning import DecodingOptions, can_caption, cannot_caption_message
    from clapkit.index import SoundIndex
    from clapkit.index.captions import caption_index

    captioner = model if args.captions == INDEX_MODEL else clapkit.load(
        args.captions, tokenizer=args.caption_tokenizer, device=args.device, trust_pickle=args.trust_pickle)
    if not can_caption(captioner):
        print(f"captions skipped: {cannot_caption_message(captioner)}; pass --captions clapcap_weights_2023.pth",
              file=sys.stderr)
        return
    report = caption_index(SoundIndex.open(directory), captioner, DecodingOptions(beam_size=args.caption_beam_size),
                           progress=not args.no_progress)
    for failure in report.failures[:20]:
        print(f"  not captioned {failure.source}: {failure.reason}", file=sys.stderr)
    print(f"captions: {report.captioned} written, {report.already} already there, {len(report.failures)} failed",
          file=sys.stderr)


def cmd_build(args: argparse.Namespace) -> int:
    return _update(args, args.out, remove_missing=not args.keep_missing, verb="index")


def cmd_add(args: argparse.Namespace) -> int:
    from clapkit.index import SoundIndex

    SoundIndex.read_info(args.index)  # a clear error before loading any model
    return _update(args, args.index, remove_missing=False, verb="index")


def cmd_remove(args: argparse.Namespace) -> int:
    from clapkit.index import SoundIndex, remove_from_index

    removed = remove_from_index(args.index, args.paths)
    for item in removed:
        print(item.path)
    left = len(SoundIndex.open(args.index))
    print(f"removed {len(removed)} sound(s) from {args.index}; {left} left", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from clapkit.index import SoundIndex

    index = SoundIndex.open(args.index)
    summary = {
        "directory": str(index.directory),
        "items": len(index),
        "kind": index.kind,
        "embedding_dim": index.dim,
        "nprobe": index.vectors.nprobe if index.kind == "ivf" else None,
        "approximate_from": index.info["approximate_from"],
        "model": index.model,
        "store": str(index.store_directory) if index.store_directory else None,
        "generation": index.info["generation"],
        "bytes": index.file_sizes(),
    }
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:17} {value}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import torch

    from clapkit.index.vectors import set_threads_per_query
    from clapkit.inputs import read_list_file
    from clapkit.serve import ServeSettings, serve

    settings = ServeSettings(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_clip_seconds=args.max_clip_seconds,
        max_timeline_seconds=args.max_timeline_seconds,
    )
    labels = read_list_file(args.labels_file, "labels file") if args.labels_file else None
    model_options = None
    if args.model != FROM_INDEX:
        model_options = {"model": args.model, "weights": args.weights, "tokenizer": args.tokenizer}
    # one core per query; concurrent requests use the others. Several OpenMP threads on the small tensors of one
    # text query cost far more than they save when the cores are busy (measured: 1.5 ms vs 170 ms a query).
    set_threads_per_query(1)
    torch.set_num_threads(args.torch_threads)
    serve(
        args.index,
        host=args.host,
        port=args.port,
        settings=settings,
        labels=labels,
        nprobe=args.nprobe,
        model_options={**(model_options or {}), "device": args.device, "trust_pickle": args.trust_pickle},
    )
    return 0


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="audio files, folders (searched recursively) or glob patterns")
    parser.add_argument("--files-from", metavar="FILE", help="a text file listing inputs, one per line")
    parser.add_argument(
        "--ext", default=",".join(e[1:] for e in AUDIO_EXTENSIONS), help="extensions taken from folders"
    )
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(4, CPUs))")
    add_quiet(parser)
    add_model_options(parser, default=FROM_INDEX)
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation with --weights random")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="build and update a searchable sound index (FAISS) of audio files")
    commands = index.add_subparsers(dest="index_command", required=True)

    build = commands.add_parser("build", help="index audio files (embeds what is new; resumable; updates in place)")
    _add_inputs(build)
    build.add_argument("--out", required=True, metavar="DIR", help="index folder (created; re-running updates it)")
    build.add_argument("--store", metavar="DIR", help="embedding store to use (default DIR/embeddings); e.g. one "
                       "written by `clapkit embed`, whose embeddings are then reused")  # fmt: skip
    build.add_argument("--keep-missing", action="store_true", help="keep indexed files that are not among PATHS")
    build.add_argument("--captions", nargs="?", const=INDEX_MODEL, metavar="MODEL",
                       help="also write a caption for each sound (shown on the page, searched as text) with MODEL "
                       "(e.g. clapcap_weights_2023.pth), or with the index's model when it can caption")
    build.add_argument("--caption-tokenizer", metavar="DIR", help="GPT-2 tokenizer folder of the --captions model")
    build.add_argument("--caption-beam-size", type=int, default=5, help="beams of the caption search (default: 5)")
    build.add_argument(
        "--approximate-from",
        type=int,
        metavar="N",
        help="search approximately (IVF) from N sounds on (default: the measured switch point)",
    )
    build.set_defaults(func=cmd_build)

    add = commands.add_parser("add", help="add audio files to an index (with the index's model)")
    add.add_argument("index", metavar="DIR")
    _add_inputs(add)
    add.set_defaults(func=cmd_add)

    remove = commands.add_parser("remove", help="remove files, folders or glob patterns from an index")
    remove.add_argument("index", metavar="DIR")
    remove.add_argument("paths", nargs="+", help="indexed files, folders or patterns (need not exist any more)")
    remove.set_defaults(func=cmd_remove)

    info = commands.add_parser("info", help="what an index holds: size, kind, model, files")
    info.add_argument("index", metavar="DIR")
    info.add_argument("--format", choices=("table", "json"), default="table")
    info.set_defaults(func=cmd_info)

    serve = sub.add_parser("serve", help="serve a sound index: web page + HTTP API (127.0.0.1 by default)")
    serve.add_argument("--index", required=True, metavar="DIR", help="an index built by `clapkit index build`")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-upload-mb", type=float, default=20.0, help="largest uploaded clip (default: 20)")
    serve.add_argument("--max-clip-seconds", type=float, default=60.0, help="longest uploaded clip (default: 60)")
    serve.add_argument("--max-timeline-seconds", type=float, default=3600.0, help="longest file for a timeline")
    serve.add_argument("--labels-file", metavar="FILE", help="tag vocabulary, one label per line (default: AudioSet)")
    serve.add_argument("--nprobe", type=int, help="IVF cells visited per query (more: better recall, slower)")
    serve.add_argument("--torch-threads", type=int, default=1, help="threads of one model call (default: 1)")
    add_model_options(serve, default=FROM_INDEX)
    serve.set_defaults(func=cmd_serve)

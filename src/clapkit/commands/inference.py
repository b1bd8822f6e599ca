"""``clapkit embed | classify | search | locate | formats``: the everyday jobs over audio files.

Results go to stdout (a table, CSV or JSON); progress, notes and the inputs that were skipped go to stderr. Bad
inputs never stop a job: they are reported and the exit status stays 0 (so one bad file does not make ``torchrun``
stop the other ranks); errors that stop the whole command (no model, no inputs at all, ...) exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

from clapkit.commands import (
    absolute_if_path,
    add_model_options,
    add_quiet,
    load_model,
    positive_int,
    report_failures,
    require_some,
)
from clapkit.errors import ClapkitError
from clapkit.inputs import AUDIO_EXTENSIONS, parse_extensions

FORMATS = ("table", "csv", "json")
FROM_STORE = "(the store's model)"


# ----------------------------------------------------------------------------------------------------- helpers
def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="audio files, folders (searched recursively) or glob patterns")
    parser.add_argument("--files-from", metavar="FILE", help="a text file listing inputs, one per line")
    parser.add_argument(
        "--ext",
        default=",".join(e[1:] for e in AUDIO_EXTENSIONS),
        help="extensions taken from folders and patterns (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: min(4, CPUs))")


def _add_common(parser: argparse.ArgumentParser, model_default: str | None = "default") -> None:
    add_model_options(parser, default=model_default)
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation with --weights random")


def _input_kwargs(args: argparse.Namespace) -> dict:
    from clapkit.jobs import DEFAULT_WORKERS

    if not args.paths and not args.files_from:
        raise ClapkitError("no inputs: give audio files, folders or patterns, or --files-from FILE")
    return {
        "files_from": args.files_from,
        "extensions": parse_extensions(args.ext),
        "batch_size": args.batch_size,
        "workers": args.workers or DEFAULT_WORKERS,
    }


def _write_rows(fmt: str, header: list[str], rows: list[list], document: dict) -> None:
    """Print ``rows`` as an aligned table or CSV, or ``document`` as JSON."""
    if fmt == "json":
        print(json.dumps(document, indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    else:
        cells = [[str(c) for c in row] for row in [header, *rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


# ------------------------------------------------------------------------------------------------------- embed
def cmd_embed(args: argparse.Namespace) -> int:
    from clapkit.jobs import Shard, run_embed_job

    shard = Shard(args.rank, args.world_size) if args.rank is not None or args.world_size is not None else None
    if shard is None:
        shard = Shard.from_env()
    elif args.rank is None or args.world_size is None:
        raise ClapkitError("pass both --rank and --world-size (or neither, to read RANK and WORLD_SIZE)")
    kwargs = _input_kwargs(args)
    model = load_model(args)
    report = run_embed_job(
        model,
        args.paths,
        args.out,
        model_source=absolute_if_path(args.model),
        weights=absolute_if_path(args.weights),
        tokenizer=absolute_if_path(args.tokenizer),
        prefetch=args.prefetch,
        shard=shard,
        progress=not args.no_progress,
        **kwargs,
    )
    report_failures(report.failures)
    where = f"rank {shard.rank}/{shard.world_size}: " if shard.world_size > 1 else ""
    rate = report.embedded / report.seconds if report.seconds else 0.0
    print(
        f"{where}embedded {report.embedded} file(s) in {report.seconds:.1f} s ({rate:.2f} files/s), "
        f"{report.already_done} already done, {len(report.failures)} failed",
        file=sys.stderr,
    )
    if report.merged and report.stored == 0:
        require_some(0, report.failures, "embedded")
    if report.merged:
        print(
            f"store {report.directory}: {report.stored} file(s) in embeddings.npy + index.csv"
            + (f"; failures listed in {report.directory / 'errors.csv'}" if report.failures else ""),
            file=sys.stderr,
        )
    else:
        print(
            f"{where}not merged yet: other ranks are still running (the last one to finish merges), or re-run "
            "this command to finish",
            file=sys.stderr,
        )
    return 0


# ---------------------------------------------------------------------------------------------------- classify
def _labels(args: argparse.Namespace) -> list[str]:
    from clapkit.inputs import read_list_file

    if args.labels_file:
        labels = read_list_file(args.labels_file, "labels file")
    else:
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise ClapkitError(f"no labels in {args.labels_file or repr(args.labels)}; give one label per line / comma")
    return labels


def cmd_classify(args: argparse.Namespace) -> int:
    from clapkit.inference import top_labels
    from clapkit.jobs import embed_files

    labels, kwargs = _labels(args), _input_kwargs(args)
    prompts = args.prompt or ["This is a sound of {}."]
    model = load_model(args)
    label_embeddings = model.label_embeddings(labels, prompts)  # fails early on a missing tokenizer or bad prompt
    result = embed_files(model, args.paths, progress=not args.no_progress, **kwargs)
    report_failures(result.failures)
    require_some(len(result.paths), result.failures, "classified")
    probabilities = model.probabilities(result.embeddings, label_embeddings, args.multi_label)
    ranked = top_labels(probabilities, labels, args.top_k) if result.paths else []
    rows = [
        [path, rank, label, f"{p:.4f}"]
        for path, top in zip(result.paths, ranked)
        for rank, (label, p) in enumerate(top, 1)
    ]
    if args.format == "table":
        rows = [[path, "  ".join(f"{label} {p:.3f}" for label, p in top)] for path, top in zip(result.paths, ranked)]
    document = {
        "model": model.config.name,
        "multi_label": args.multi_label,
        "prompts": prompts,
        "labels": labels,
        "results": [
            {"path": path, "top": [{"label": label, "probability": p} for label, p in top]}
            for path, top in zip(result.paths, ranked)
        ],
        "failures": [{"path": f.source, "reason": f.reason} for f in result.failures],
    }
    header = ["path", "top labels"] if args.format == "table" else ["path", "rank", "label", "probability"]
    _write_rows(args.format, header, rows, document)
    return 0


# ------------------------------------------------------------------------------------------------------ search
def cmd_search(args: argparse.Namespace) -> int:
    from clapkit.identity import describe_model, model_identity, same_model
    from clapkit.index.search import load_recorded_model
    from clapkit.jobs import embed_files
    from clapkit.store import EmbeddingStore

    if (args.query is None) == (args.like is None):
        raise ClapkitError('search needs a text query or --like FILE (not both): clapkit search "a dog" --in DIR')
    store = EmbeddingStore(args.store)
    if store.pending_parts:
        print(
            f"note: {store.pending_parts} batch(es) in {store.directory / 'parts'} are not merged yet (a job is "
            "running or was interrupted); re-run `clapkit embed` to include them",
            file=sys.stderr,
        )
    query = store.embedding(args.like) if args.like else None
    if query is None:  # a text query, or a sound that is not in the store: embed it with the store's model
        recorded = store.info["model"]
        if args.model == FROM_STORE:
            model = load_recorded_model(recorded, args.seed, device=args.device, trust_pickle=args.trust_pickle)
        else:
            model = load_model(args)
        if not same_model(recorded, model_identity(model, args.model)):  # weights and config, front end included
            raise ClapkitError(
                f"{store.directory} was embedded with model {describe_model(recorded)}; the model given differs "
                "(in its weights or its config, e.g. the audio front end). Search with the same model (and, for "
                "--weights random, the same --seed), or leave --model out to use the store's"
            )
        if args.like:
            result = embed_files(model, [args.like], extensions=AUDIO_EXTENSIONS)
            if not result.paths:
                failure = result.failures[0]
                raise ClapkitError(f"{failure.source}: {failure.reason}")
            query = result.embeddings[0]
        else:
            model.warn_unknown([args.query], "query")
            query = model.embed_text([args.query])[0]
    matches = store.search(query, args.top_k, exclude=[args.like] if args.like else ())
    rows = [[rank, f"{m.score:.4f}", m.path] for rank, m in enumerate(matches, 1)]
    document = {
        "query": args.query,
        "like": args.like and os.path.abspath(args.like),
        "results": [{"rank": r, "path": m.path, "score": m.score} for r, m in enumerate(matches, 1)],
    }
    _write_rows(args.format, ["rank", "score", "path"], rows, document)
    return 0


# ------------------------------------------------------------------------------------------------------ locate
def cmd_locate(args: argparse.Namespace) -> int:
    from clapkit.locate import format_time, locate, plot_similarity

    model = load_model(args)
    result = locate(
        model,
        args.file,
        args.text,
        window_seconds=args.window,
        hop_seconds=args.hop,
        threshold=args.threshold,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    if result.note:
        print(f"note: {args.file}: {result.note}", file=sys.stderr)
    how = "given" if args.threshold is not None else "adaptive: mean + 2 std of the windows"
    print(
        f"{args.text!r} in {args.file}: {len(result.scores)} windows; threshold {result.threshold:.4f} ({how}); "
        f"{len(result.ranges)} range(s)",
        file=sys.stderr,
    )
    rows = [[format_time(r.start), format_time(r.end), f"{r.score:.4f}"] for r in result.ranges]
    if args.format == "csv":
        rows = [[f"{r.start:.3f}", f"{r.end:.3f}", f"{r.score:.4f}"] for r in result.ranges]
    document = {
        "file": os.path.abspath(args.file),
        "text": args.text,
        "threshold": result.threshold if math.isfinite(result.threshold) else None,
        "note": result.note,
        "ranges": [{"start": r.start, "end": r.end, "score": r.score} for r in result.ranges],
        "windows": [
            {"start": float(s), "end": float(e), "score": float(c)}
            for s, e, c in zip(result.starts, result.ends, result.scores)
        ],
    }
    _write_rows(args.format, ["start", "end", "score"], rows, document)
    if args.plot:
        plot_similarity(result, args.plot, title=f"{args.text!r} in {Path(args.file).name}")
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from clapkit.inputs import decodable_formats

    _write_rows("table", ["extension", "decoder"], [[e, d] for e, d in decodable_formats().items()], {})
    return 0


# ----------------------------------------------------------------------------------------------------- parsers
def add_parsers(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="embed audio files into a resumable embedding store (--out DIR)")
    _add_inputs(embed)
    _add_common(embed)
    embed.add_argument("--out", required=True, help="store folder (created; re-running resumes)")
    embed.add_argument("--prefetch", type=int, default=2, help="batches decoded ahead of the model")
    add_quiet(embed)
    embed.add_argument("--rank", type=int, help="this process's rank (default: $RANK, else 0)")
    embed.add_argument("--world-size", type=int, help="number of processes (default: $WORLD_SIZE, else 1)")
    embed.set_defaults(func=cmd_embed)

    classify = sub.add_parser("classify", help="zero-shot classify audio files with text labels")
    _add_inputs(classify)
    _add_common(classify)
    labels = classify.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="comma-separated labels, e.g. dog,rain,car horn")
    labels.add_argument("--labels-file", help="a text file with one label per line")
    classify.add_argument(
        "--prompt",
        action="append",
        help="prompt template with {} (repeat to average several); default 'This is a sound of {}.'",
    )
    classify.add_argument("--multi-label", action="store_true", help="a sigmoid per label instead of a softmax")
    classify.add_argument("--top-k", type=positive_int, default=5, help="labels shown per file (default: 5)")
    classify.add_argument("--format", choices=FORMATS, default="table")
    add_quiet(classify)
    classify.set_defaults(func=cmd_classify)

    search = sub.add_parser("search", help="search an embedding store by text or by a similar sound")
    search.add_argument("query", nargs="?", help="text describing the sound")
    search.add_argument("--like", metavar="FILE", help="find sounds similar to this file")
    search.add_argument("--in", dest="store", required=True, metavar="DIR", help="a store written by clapkit embed")
    search.add_argument("--top-k", type=positive_int, default=10, help="results shown (default: 10)")
    search.add_argument("--format", choices=FORMATS, default="table")
    _add_common(search, FROM_STORE)
    search.set_defaults(func=cmd_search)

    where = sub.add_parser("locate", help="find where a text matches in a long recording (streamed windows)")
    where.add_argument("file", help="the recording (any length)")
    where.add_argument("text", help='what to find, e.g. "glass breaking"')
    _add_common(where)
    where.add_argument("--window", type=float, help="window length in seconds (default: the model's clip)")
    where.add_argument("--hop", type=float, help="hop in seconds (default: half the window)")
    where.add_argument("--threshold", type=float, help="cosine similarity a window needs (default: adaptive)")
    where.add_argument("--batch-size", type=positive_int, default=8)
    where.add_argument("--plot", metavar="PNG", help="also write a plot of the similarity over time")
    where.add_argument("--format", choices=FORMATS, default="table")
    add_quiet(where)
    where.set_defaults(func=cmd_locate)

    sub.add_parser("formats", help="audio formats this machine decodes").set_defaults(func=cmd_formats)

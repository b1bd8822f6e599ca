"""``clapkit data shard`` (manifest -> webdataset tar shards), ``clapkit data captions`` (precompute keyword
captions and ReCLAP rewrites into a manifest) and ``clapkit data harvest`` (corpus v2 from Debian packages)."""

from __future__ import annotations

import argparse
import os

from clapkit.errors import ClapkitError


def cmd_shard(args: argparse.Namespace) -> int:
    from clapkit.train.shards import write_shards

    result = write_shards(
        args.manifest, args.out, sample_rate=None if args.keep_original else args.sample_rate,
        max_items_per_shard=args.max_items_per_shard, prefix=args.prefix, root=args.root,
        skip_silent=not args.keep_silent, workers=args.workers, overwrite=args.overwrite,
    )
    print(f"wrote {result.items} items in {len(result.shards)} shards to {args.out} (sizes in {result.sizes_path})")
    print(f"skipped: {result.skipped.summary()}")
    return 0 if result.items else 1


def build_backend(args: argparse.Namespace):
    """The text backend of ``--backend`` (``None`` for offline), wrapped in a JSONL cache."""
    from clapkit.textgen import CachedGenerator, ChatEndpoint, Seq2SeqModel

    if args.backend == "offline":
        return None
    if args.backend == "chat":
        if not args.base_url or not args.model:
            raise ClapkitError("--backend chat needs --base-url (your server, e.g. http://127.0.0.1:8000/v1) and "
                               "--model (the name it serves)")
        api_key = None
        if args.api_key_env:
            api_key = os.environ.get(args.api_key_env)
            if not api_key:
                raise ClapkitError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
        backend = ChatEndpoint(args.base_url, args.model, api_key, temperature=args.temperature,
                               concurrency=args.concurrency, seed=args.seed, timeout=args.timeout)
    else:
        if not args.model_dir:
            raise ClapkitError("--backend seq2seq needs --model-dir (a local transformers seq2seq directory)")
        backend = Seq2SeqModel(args.model_dir, device=args.device)
    cache = args.cache or f"{args.out}.textgen-cache.jsonl"
    return CachedGenerator(backend, cache)


def cmd_captions(args: argparse.Namespace) -> int:
    if not args.keywords_to_caption and args.rewrites <= 0:
        raise ClapkitError("nothing to do: pass --keywords-to-caption and/or --rewrites N")
    from clapkit.train.precompute import precompute_captions

    counts = precompute_captions(
        args.manifest, args.out, backend=build_backend(args), root=args.root,
        keywords_to_caption=args.keywords_to_caption, rewrites=args.rewrites, seed=args.seed, debias=args.debias,
    )
    print(f"wrote {counts['entries']} entries to {args.out}: {counts['keyword_captions']} keyword captions, "
          f"{counts['rewrites']} rewrites ({counts['skipped_rows']} manifest rows skipped)")
    return 0


def cmd_harvest(args: argparse.Namespace) -> int:
    from clapkit.harvest import harvest

    if not args.sources and not args.download and not args.synth:
        raise ClapkitError("nothing to harvest: give .deb files or directories, and/or --download PKG ...")
    result = harvest(args.sources, args.out, download_names=args.download or (), work=args.work,
                     embedder=None if args.no_minilm else "minilm", workers=args.workers, progress=not args.quiet,
                     synth=args.synth, derive=args.derive)
    tops = ", ".join(f"{name} {n}" for name, n in sorted(result.per_top.items()))
    print(f"wrote {result.clips} clips to {result.out}/meta.csv: {result.labels} distinct primary labels "
          f"({result.all_labels} in any position), {result.classes} ontology classes ({tops})")
    print("skipped: " + (", ".join(f"{reason} {n}" for reason, n in result.skipped.most_common()) or "nothing"))
    return 0 if result.clips else 1


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="prepare training data: webdataset shards, keyword captions, rewrites")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    shard = data_sub.add_parser("shard", help="write a manifest or caption folder as webdataset tar shards")
    shard.add_argument("manifest", help="a .csv/.tsv/.jsonl/.json manifest or a folder with captions beside the audio")
    shard.add_argument("--out", required=True, help="output folder for shard-NNNNNN.tar and sizes.json")
    shard.add_argument("--sample-rate", type=int, default=48000, help="store 16-bit FLAC at this rate (default 48000)")
    shard.add_argument("--keep-original", action="store_true", help="store the original audio bytes instead of FLAC")
    shard.add_argument("--max-items-per-shard", type=int, default=1000)
    shard.add_argument("--prefix", default="shard")
    shard.add_argument("--root", help="resolve relative audio paths against this folder (default: the manifest's)")
    shard.add_argument("--workers", type=int, default=1, help="decode with this many processes")
    shard.add_argument("--keep-silent", action="store_true", help="keep silent clips (skipped by default)")
    shard.add_argument("--overwrite", action="store_true", help="replace existing shards with the same prefix")
    shard.set_defaults(func=cmd_shard)

    captions = data_sub.add_parser("captions", help="precompute keyword captions and caption rewrites into a manifest")
    captions.add_argument("manifest", help="input manifest or caption folder")
    captions.add_argument("--out", required=True, help="output manifest (.jsonl, or .csv)")
    captions.add_argument("--keywords-to-caption", action="store_true",
                          help="give rows with keywords but no caption a caption made from the keywords")
    captions.add_argument("--rewrites", type=int, default=0, metavar="N", help="add N rewrites of every caption")
    captions.add_argument("--backend", choices=["offline", "chat", "seq2seq"], default="offline",
                          help="offline: templates and rule-based rewrites; chat: an OpenAI-compatible server; "
                               "seq2seq: a local transformers model directory")
    captions.add_argument("--base-url", help="chat server URL, e.g. http://127.0.0.1:8000/v1 (no default)")
    captions.add_argument("--model", help="model name the chat server serves")
    captions.add_argument("--api-key-env", help="name of an environment variable holding the server's API key")
    captions.add_argument("--temperature", type=float, default=0.7)
    captions.add_argument("--concurrency", type=int, default=4, help="parallel chat requests")
    captions.add_argument("--timeout", type=float, default=60.0, help="seconds per chat request")
    captions.add_argument("--model-dir", help="local seq2seq model directory (T5, BART, ...)")
    captions.add_argument("--device", default="cpu")
    captions.add_argument("--cache", help="JSONL cache of generated text (default: OUT.textgen-cache.jsonl)")
    captions.add_argument("--seed", type=int, default=0)
    captions.add_argument("--debias", choices=["generated", "all", "none"], default="generated",
                          help="man/woman -> person, boy/girl -> child in generated text (default), all text, or none")
    captions.add_argument("--root", help="resolve relative audio paths against this folder")
    captions.set_defaults(func=cmd_captions)

    harvest = data_sub.add_parser("harvest", help="build a labelled sound corpus from Debian packages (docs/corpus.md)")
    harvest.add_argument("sources", nargs="*", help=".deb files or directories of them")
    harvest.add_argument("--out", required=True, help="corpus folder: clips/, meta.csv, skipped.csv, packages.csv")
    harvest.add_argument("--download", nargs="+", metavar="PKG", help="fetch these packages with apt-get download")
    harvest.add_argument("--work", help="cache of extracted packages and decoded clips (default OUT/.work); keep it "
                                        "to make re-runs fast")
    harvest.add_argument("--workers", type=int, default=2, help="decoding processes (default 2)")
    harvest.add_argument("--synth", action="store_true",
                         help="also render espeak-ng words and FluidR3 instrument notes (needs espeak-ng, fluidsynth, "
                              "fluid-soundfont-gm)")
    harvest.add_argument("--derive", type=int, default=0, metavar="N",
                         help="also derive N clips per channel effect (hall, reverb, echo, radio, static, noise, ...) "
                              "from the corpus' own clips (default 0)")
    harvest.add_argument("--no-minilm", action="store_true", help="no MiniLM near-miss matching of path words")
    harvest.add_argument("--quiet", action="store_true", help="no progress bars")
    harvest.set_defaults(func=cmd_harvest)

"""``clapkit eval zeroshot|retrieval|probe``: evaluate a model on a dataset with the papers' protocols and write a
JSON report (every number, the exact settings) and a Markdown summary."""

from __future__ import annotations

import argparse

from clapkit.commands import add_model_options, load_model

TASKS = {"zeroshot": "zero-shot classification", "retrieval": "audio-text retrieval", "probe": "linear probe"}


def _add_common(parser: argparse.ArgumentParser) -> None:
    from clapkit.eval.catalog import list_datasets

    data = parser.add_argument_group("dataset")
    data.add_argument("--dataset", required=True, help=f"one of: {', '.join(list_datasets())}")
    data.add_argument("--root", required=True, help="the dataset folder as its official download unpacks (for csv: "
                                                     "the manifest file or its folder)")
    data.add_argument("--split", help="clotho: evaluation|validation|development; audiocaps: test|val|train; "
                                      "fsd50k: eval|dev|all")
    data.add_argument("--allow-missing", action="store_true", help="evaluate the clips present; report missing ones")
    data.add_argument("--folds", help="only these folds, comma-separated (e.g. 5)")
    data.add_argument("--max-per-class", type=int, help="at most K clips per class (first in manifest order)")
    data.add_argument("--limit", type=int, help="at most N clips, spread evenly over the dataset")
    csv = parser.add_argument_group("csv manifest (--dataset csv)")
    csv.add_argument("--path-column", default="path")
    csv.add_argument("--class-column", default="class")
    csv.add_argument("--caption-column", default="caption")
    csv.add_argument("--fold-column", default="fold")
    csv.add_argument("--label-separator", help="separator of several labels in the class column (multi-label)")
    run = parser.add_argument_group("run")
    add_model_options(run)
    run.add_argument("--output", default="eval-reports", help="report folder (default: ./eval-reports)")
    run.add_argument("--cache-dir",
                     help="embedding cache folder (default: $CLAPKIT_CACHE/eval or ~/.cache/clapkit/eval)")
    run.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    run.add_argument("--batch-size", type=int, default=8)
    run.add_argument("--seed", type=int, default=0, help="seeds random weights and ReCLAP prompt sampling")
    run.add_argument("--progress", action="store_true", help="show a progress bar while embedding audio")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("eval", help="evaluate a model: zero-shot, retrieval, linear probe")
    tasks = evaluate.add_subparsers(dest="task", required=True)
    for name, description in TASKS.items():
        parser = tasks.add_parser(name, help=description, description=f"{description}; writes a JSON + Markdown report")
        _add_common(parser)
        if name == "zeroshot":
            prompts = parser.add_argument_group("prompts")
            prompts.add_argument("--template", action="append", help="a template set (laion, laion-music, ms-clap, "
                                 "ms-clap-predictions, label, ensemble) or a template with {}; repeat to ensemble "
                                 "(default: the dataset's, as the papers used)")
            prompts.add_argument("--keep-labels", action="store_true", help="no label cleanup (dog_bark stays)")
            prompts.add_argument("--reclap", choices=("offline", "openai", "local"),
                                 help="also run ReCLAP prompt augmentation with this describer")
            prompts.add_argument("--reclap-prompts", type=int, default=8, help="descriptive prompts per class")
            prompts.add_argument("--llm-url", help="OpenAI-compatible endpoint (--reclap openai)")
            prompts.add_argument("--llm-model",
                                 help="model name at the endpoint, or local model folder (--reclap local)")
            prompts.add_argument("--llm-cache", default="reclap-llm-cache.jsonl", help="JSONL cache of LLM answers")
        if name == "probe":
            parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
            parser.add_argument("--max-iter", type=int, default=1000)
        parser.set_defaults(func=run_eval)


def _dataset(args):
    from clapkit.eval.catalog import dataset_spec, load_dataset
    from clapkit.eval.datasets import subset

    options = {"allow_missing": args.allow_missing} if args.allow_missing else {}
    if args.dataset.lower() == "csv":
        options.update(path_column=args.path_column, class_column=args.class_column,
                       caption_column=args.caption_column, fold_column=args.fold_column,
                       label_separator=args.label_separator)
    split = args.split
    if args.task == "probe" and split is None:
        split = dataset_spec(args.dataset).probe_split
    dataset = load_dataset(args.dataset, args.root, split, **options)
    folds = args.folds.split(",") if args.folds else None
    if folds or args.max_per_class or args.limit:
        dataset = subset(dataset, args.max_per_class, args.limit, folds)
    return dataset


def _describer(args):
    from clapkit.eval.reclap import OntologyDescriber, language_model_describer

    if args.reclap == "offline":
        return OntologyDescriber()
    return language_model_describer(args.reclap, args.llm_model, args.llm_url, args.llm_cache, args.seed)


def run_eval(args) -> int:
    from clapkit.eval.cache import EmbeddingCache, default_cache_dir, model_fingerprint
    from clapkit.eval.report import model_info, write_report

    dataset = _dataset(args)
    describer = _describer(args) if getattr(args, "reclap", None) else None  # bad LLM options fail before loading
    model = load_model(args)  # random weights are seeded with --seed: reproducible
    fingerprint = model_fingerprint(model)
    cache = EmbeddingCache(None if args.no_cache else (args.cache_dir or default_cache_dir()), fingerprint)
    common = {"cache": cache, "batch_size": args.batch_size, "progress": args.progress}
    if args.task == "zeroshot":
        from clapkit.eval.zeroshot import evaluate_zero_shot

        report = evaluate_zero_shot(model, dataset, args.template, not args.keep_labels, describer,
                                    args.reclap_prompts, args.seed, **common)
    elif args.task == "retrieval":
        from clapkit.eval.retrieval import evaluate_retrieval

        report = evaluate_retrieval(model, dataset, **common)
    else:
        from clapkit.eval.linear_probe import evaluate_linear_probe

        report = evaluate_linear_probe(model, dataset, args.C, args.max_iter, **common)
    arguments = {k: v for k, v in sorted(vars(args).items()) if k not in ("func", "command")}
    report = {"task": report.pop("task"), "model": model_info(model, args.weights, fingerprint),
              "arguments": arguments, **report}
    paths = write_report(report, args.output, f"{report['task']}-{dataset.name}-{model.config.name}")
    for name, result in report["results"].items():
        shown = {k: v for k, v in result["metrics"].items() if isinstance(v, float)}
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))
    print(f"report: {paths['json']}\nsummary: {paths['markdown']}")
    return 0

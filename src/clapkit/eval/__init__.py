"""Evaluate CLAP models like the papers: zero-shot classification, retrieval, linear probe, prompt augmentation.

::

    from clapkit.eval import load_dataset, evaluate_zero_shot, write_report
    dataset = load_dataset("esc50", "ESC-50-master")
    report = evaluate_zero_shot(model, dataset, templates="laion")
    write_report(report, "reports")

See ``docs/evaluation.md`` for the protocols. scikit-learn (linear probe) and matplotlib (confusion PNG) come with
the ``eval`` extra and are imported only when used.
"""

from clapkit.eval.cache import EmbeddingCache, model_fingerprint
from clapkit.eval.catalog import list_datasets, load_dataset
from clapkit.eval.datasets import Clip, DatasetError, EvalDataset, ProbeSplit, subset
from clapkit.eval.linear_probe import evaluate_linear_probe, linear_probe
from clapkit.eval.metrics import (
    average_precision,
    mean_average_precision,
    retrieval_metrics,
    top_k_accuracy,
)
from clapkit.eval.prompts import TEMPLATES, class_embeddings, clean_label, format_prompts, resolve_templates
from clapkit.eval.reclap import LanguageModelDescriber, OntologyDescriber, reclap_prompt_sets
from clapkit.eval.report import write_report
from clapkit.eval.retrieval import evaluate_retrieval
from clapkit.eval.zeroshot import evaluate_zero_shot, score_zero_shot, zero_shot_probabilities

__all__ = [
    "TEMPLATES",
    "Clip",
    "DatasetError",
    "EmbeddingCache",
    "EvalDataset",
    "LanguageModelDescriber",
    "OntologyDescriber",
    "ProbeSplit",
    "average_precision",
    "class_embeddings",
    "clean_label",
    "evaluate_linear_probe",
    "evaluate_retrieval",
    "evaluate_zero_shot",
    "format_prompts",
    "linear_probe",
    "list_datasets",
    "load_dataset",
    "mean_average_precision",
    "model_fingerprint",
    "reclap_prompt_sets",
    "resolve_templates",
    "retrieval_metrics",
    "score_zero_shot",
    "subset",
    "top_k_accuracy",
    "write_report",
    "zero_shot_probabilities",
]

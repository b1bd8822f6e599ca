"""``clapkit.load``: a name, a checkpoint file or a directory -> a ready ``ClapPipeline``."""

from __future__ import annotations

from pathlib import Path

import torch

from clapkit.checkpoints import FAMILIES_HELP, load_state_dict_strict, load_weights
from clapkit.config import ModelConfig
from clapkit.default_model import NAMES as DEFAULT_NAMES
from clapkit.default_model import default_parts
from clapkit.errors import CheckpointError, TokenizerError
from clapkit.inference import ClapPipeline
from clapkit.models.caption import CaptionNetwork
from clapkit.models.clap import ClapNetwork
from clapkit.models.empty import parameters_on_meta
from clapkit.registry import get_config, list_models


def load(
    path_or_name: str | Path,
    weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    trust_pickle: bool = False,
    fast: str | None = None,
    download: bool = False,
) -> ClapPipeline:
    """Load a CLAP model.

    - ``load("default")``: clapkit's own offline model (aiSFX CNN + MiniLM, 512-d; docs/default-model.md).
    - ``load("630k-audioset-best.pt")``: the family and architecture are detected from the file.
    - ``load("laion-htsat-tiny", weights="630k-best.pt")``: a registry config with weights (checked strictly).
    - ``load("laion-htsat-tiny", weights="random")``: random initialisation (for tests and training from scratch).
    - ``load("clapcap_weights_2023.pth")``: MS-CLAP's captioning model; ``model.caption(files)`` (docs/captioning.md).
    ``tokenizer``: a local tokenizer directory; without one, BERT-vocabulary towers use the bundled vocab and others
    can still ``encode_text`` pre-tokenised ids. ``fast="auto"`` (or a backend: ``"bf16"``, ``"int8"``,
    ``"openvino"``, ``"onnxruntime"``, ``"onnxruntime-int8"``): a fast CPU audio path (``clapkit.fast.accelerate``;
    inference only; docs/performance.md).
    - ``load("630k-audioset-best")`` / ``load("laion/clap-htsat-unfused")``: a public checkpoint (``clapkit models
      --public``) or hub repo, from the Hugging Face cache with no network call; ``download=True`` fetches it first
      (``clapkit.hub``; same as ``clapkit download NAME``).
    """
    hub = _hub_files(path_or_name, weights, download, trust_pickle)
    if hub is not None:
        path_or_name = hub.path
        tokenizer = tokenizer if tokenizer is not None else hub.tokenizer
    config, state_dict = _resolve(path_or_name, weights, trust_pickle)
    network = CaptionNetwork if config.caption is not None else ClapNetwork
    if state_dict is None:
        module = network(config)
    else:  # the checkpoint's tensors become the parameters: no random ones are made first
        with parameters_on_meta():
            module = network(config)
        load_state_dict_strict(module, state_dict, str(weights or path_or_name), assign=True)
    from clapkit.tokenizers import load_tokenizer

    if tokenizer is None and Path(path_or_name).is_dir() and _has_tokenizer_files(Path(path_or_name)):
        tokenizer = path_or_name  # Hugging Face directories ship their tokenizer
    try:
        text_tokenizer = load_tokenizer(config.text, tokenizer)
    except TokenizerError:
        if tokenizer is not None:
            raise
        text_tokenizer = None  # embed_text will say how to supply one; encode_text still works
    model = ClapPipeline(module, config, text_tokenizer, device)
    if fast:
        from clapkit.fast import accelerate

        model = accelerate(model, fast)
    return model


def _hub_files(name, weights, download: bool, trust_pickle: bool):
    """A public checkpoint name or hub repo id (never a local path) -> its cached files (``clapkit.hub``, imported
    only here: loading a path never imports huggingface_hub)."""
    from clapkit.public import looks_like_hub_name

    if weights is not None or str(name) in DEFAULT_NAMES or str(name) in list_models():
        return None
    if not looks_like_hub_name(str(name)):
        if download:
            raise CheckpointError(f"{name}: download=True needs a public checkpoint name or a hub repo id "
                                  "(`clapkit models --public`), not a local path")
        return None
    from clapkit.hub import resolve

    return resolve(str(name), download=download, trust_pickle=trust_pickle)


def _has_tokenizer_files(directory: Path) -> bool:
    return any((directory / name).exists() for name in ("tokenizer.json", "vocab.json", "vocab.txt"))


def _resolve(path_or_name, weights, trust_pickle) -> tuple[ModelConfig, dict | None]:
    name = str(path_or_name)
    if name in DEFAULT_NAMES:
        if weights is not None:
            raise CheckpointError(f"{name!r} is clapkit's trained default model; pass weights= only with an "
                                  "architecture name such as 'clapkit-default'")
        return default_parts()
    if name in list_models():
        config = get_config(name)
        if weights is None:
            raise CheckpointError(
                f"model {name!r} is an architecture, not trained weights: pass weights=PATH to a checkpoint of it "
                f"(e.g. LAION's 630k-audioset-best.pt), load a public checkpoint by name (`clapkit models "
                f"--public`) or pass weights='random' for a randomly initialised model. {FAMILIES_HELP}"
            )
        if str(weights) == "random":
            return config, None
        _, state_dict = load_weights(weights, config, trust_pickle=trust_pickle)
        return config, state_dict
    path = Path(name)
    if not path.exists():
        raise CheckpointError(
            f"{name}: no such file or directory, and not a model name. Known names: {', '.join(list_models())}; "
            f"public checkpoints: `clapkit models --public`. {FAMILIES_HELP}"
        )
    if weights is not None:
        raise CheckpointError(f"{name} is already a checkpoint; pass weights= only together with a model name")
    return load_weights(path, trust_pickle=trust_pickle)


def load_reproducibly(path_or_name: str | Path, weights: str | Path | None = None, *, seed: int = 0,
                      **options) -> ClapPipeline:
    """``load``, with torch's generator seeded with ``seed`` first when ``weights="random"``: the same random model in
    every process and every run (what stores and indexes of random models record, so they can be queried again)."""
    if weights is not None and str(weights) == "random":
        torch.manual_seed(seed)
    return load(path_or_name, weights=weights, **options)

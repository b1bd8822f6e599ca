"""Run the reference packages (laion_clap 1.1.7, msclap 1.3.4, transformers 4.57.6) with random weights, offline.

Used only by the ``tests/parity/reference_*.py`` builders, inside the reference environment (``.venv-ref``); clapkit
never imports it. Call :func:`install` before importing ``laion_clap``, ``msclap`` or building a transformers model.

What the packages would fetch, and what they get instead:

- ``<Model>.from_pretrained(hub_id)`` / ``AutoModel.from_pretrained(hub_id)`` for a hub id in :data:`HUB_CONFIGS`:
  the model built from a local config with the hub's shapes, randomly initialised (``<Model>``: once per process,
  later calls get a copy, as twelve LAION references share RoBERTa's shapes; the builders perturb each copy). Any
  other argument (a directory on disk, e.g. an export under test) goes to the real ``from_pretrained``.
- ``<Tokenizer>.from_pretrained(hub_id)`` / ``AutoTokenizer.from_pretrained(hub_id)`` for an id in
  :data:`TOKENIZERS`: tokenizer files written once into :func:`tokenizer_dir`. BERT gets the real bert-base-uncased
  vocabulary bundled with clapkit (``src/clapkit/assets``), so its ids are the real ones; the byte-level BPE towers
  (RoBERTa, GPT-2, BART) get a small vocabulary trained on caption-like sentences (no real one is available
  offline), with the real special-token ids: RoBERTa/BART ``<s>``=0 ``<pad>``=1 ``</s>``=2 ``<unk>``=3, GPT-2 ``!``=0
  (the byte alphabet first, in GPT-2's byte order) and ``<|endoftext|>`` last.
- torchaudio 2.11 from PyPI is a CUDA build whose C++ extension does not load beside CPU torch 2.13: a stand-in
  ``torchaudio._extension`` lets its pure-Python transforms (MelSpectrogram, Resample, ...) import and run.
- laion_clap imports torchvision without declaring it, and the paired torchvision wheel does not import: a small
  stand-in package provides what laion_clap touches (``ops.misc.FrozenBatchNorm2d``; ``transforms.Resize`` as
  torchvision's tensor path, bilinear with antialias; the image-only transforms raise if ever called). It is
  registered after transformers is imported, whose availability probe would otherwise trip over it.
- Sockets and ``wget.download`` raise, so an overlooked download fails at once instead of hanging.

Other reference builders (BART/T5 text towers, MS-CLAP captioning) extend or replace entries of :data:`HUB_CONFIGS`
and :data:`TOKENIZERS` with :func:`register_model` / :func:`register_tokenizer` before calling :func:`install` (or
after: lookups are live); a replaced entry holds in that builder's process only. A builder with a vocabulary of its
own writes it itself and points the hub id at it with :func:`register_tokenizer_files` (not the shared cache, where
it would meet another builder's files under the same hub id).
"""

from __future__ import annotations

import copy
import json
import os
import random
import sys
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BERT_VOCAB = ROOT / "src" / "clapkit" / "assets" / "bert-base-uncased-vocab.txt"
VOCAB_VERSION = "clapkit-parity-v1"

# hub id -> zero-argument factory of the transformers config with the hub's shapes (values from the hub's config.json)
HUB_CONFIGS: dict[str, Callable[[], object]] = {}
# hub id -> (transformers tokenizer class name, writer(directory) that fills the directory with its files; None for
# the builder's own files, register_tokenizer_files)
TOKENIZERS: dict[str, tuple[str, Callable[[Path], None] | None]] = {}
_OWN_FILES: dict[str, Path] = {}  # hub id -> the directory holding the builder's own tokenizer files


def register_model(hub_id: str, config_factory: Callable[[], object]) -> None:
    HUB_CONFIGS[hub_id] = config_factory


def register_tokenizer(hub_id: str, class_name: str, writer: Callable[[Path], None]) -> None:
    TOKENIZERS[hub_id] = (class_name, writer)
    _OWN_FILES.pop(hub_id, None)


def register_tokenizer_files(hub_id: str, class_name: str, directory: Path) -> None:
    """``from_pretrained(hub_id)`` reads the tokenizer files the builder has written to ``directory``."""
    TOKENIZERS[hub_id] = (class_name, None)
    _OWN_FILES[hub_id] = Path(directory)


# ------------------------------------------------------------------------------------------------ hub configs
def _roberta_base():
    from transformers import RobertaConfig

    return RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                         pad_token_id=1, bos_token_id=0, eos_token_id=2)  # fmt: skip


def _bert_base_uncased():
    from transformers import BertConfig

    return BertConfig()  # BertConfig's defaults are bert-base-uncased's


def _gpt2():
    from transformers import GPT2Config

    return GPT2Config()  # GPT2Config's defaults are the 124M gpt2's


def _bart_base():
    from transformers import BartConfig

    return BartConfig(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                      decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072)  # fmt: skip


register_model("roberta-base", _roberta_base)
register_model("bert-base-uncased", _bert_base_uncased)
register_model("gpt2", _gpt2)
register_model("facebook/bart-base", _bart_base)
# T5 and other towers: their reference builders register their hub ids here.


# ------------------------------------------------------------------------------------------------ tokenizer files
_WHO = ["a dog", "two cats", "a man", "a woman", "children", "an old car", "birds", "a steam train", "heavy rain",
        "the wind", "a church bell", "an electric guitar", "a piano", "a crowd", "a baby", "a police siren",
        "running water", "a wooden door", "a phone", "thunder", "a motorbike", "footsteps", "drums", "a violin"]
_DOES = ["barks", "meows", "talks", "sings", "laughs", "cheers", "chirps", "passes by", "rumbles", "hums", "falls",
         "howls", "rings", "plays", "cries", "wails", "splashes", "creaks", "roars", "echoes", "ticks", "whistles"]
_WHERE = ["far away", "in the street", "in a small room", "by a river", "in the woods", "at night", "in a storm",
          "in a big hall", "outdoors", "on a tin roof", "in the kitchen", "on the beach", "over music",
          "with some noise", "through a speaker", "in a quiet park"]  # fmt: skip


def sentences(count: int, seed: int) -> list[str]:
    """Caption-like sentences (deterministic) for training the stand-in BPE vocabulary."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = f"{rng.choice(_WHO)} {rng.choice(_DOES)} {rng.choice(_WHERE)}"
        if rng.random() < 0.4:
            text += f", then {rng.choice(_WHO)} {rng.choice(_DOES)}"
        text = text[0].upper() + text[1:] + rng.choice([".", "!", "", "?"])
        out.append(text)
    return out


def _bpe_merges() -> list[tuple[str, str]]:
    """Byte-level BPE merges learned (with the ``tokenizers`` trainer) on :func:`sentences`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=900, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    corpus = sentences(3000, seed=11) + [s.lower() for s in sentences(1000, seed=12)]
    bpe.train_from_iterator(corpus, trainer=trainer)
    merges = json.loads(bpe.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def _byte_level_vocab(specials_first: list[str], specials_last: list[str]) -> tuple[dict[str, int], str]:
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    merges = _bpe_merges()
    tokens = list(specials_first) + list(bytes_to_unicode().values())  # GPT-2 byte order: '!' first
    tokens += [a + b for a, b in merges]
    vocab: dict[str, int] = {}
    for token in tokens + list(specials_last):
        vocab.setdefault(token, len(vocab))
    text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return vocab, text


def _writer_byte_level(first: list[str], last: list[str], max_length: int) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        vocab, merges = _byte_level_vocab(first, last)
        (directory / "vocab.json").write_text(json.dumps(vocab))
        (directory / "merges.txt").write_text(merges)
        (directory / "tokenizer_config.json").write_text(json.dumps({"model_max_length": max_length}))

    return write


def _write_bert(directory: Path) -> None:
    (directory / "vocab.txt").write_bytes(BERT_VOCAB.read_bytes())
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))


register_tokenizer("roberta-base", "RobertaTokenizer", _writer_byte_level(["<s>", "<pad>", "</s>", "<unk>"],
                                                                          ["<mask>"], 512))  # fmt: skip
register_tokenizer("facebook/bart-base", "BartTokenizer", _writer_byte_level(["<s>", "<pad>", "</s>", "<unk>"],
                                                                             ["<mask>"], 1024))  # fmt: skip
register_tokenizer("gpt2", "GPT2Tokenizer", _writer_byte_level([], ["<|endoftext|>"], 1024))
register_tokenizer("bert-base-uncased", "BertTokenizer", _write_bert)


def tokenizer_dir(hub_id: str) -> Path:
    """The directory holding the stand-in tokenizer files of ``hub_id`` (written on first use)."""
    if hub_id in _OWN_FILES:
        return _OWN_FILES[hub_id]
    cache = Path(os.environ.get("CLAPKIT_PARITY_TOKENIZERS", Path("/tmp") / f"clapkit-parity-tokenizers-{os.getuid()}"))
    directory = cache / VOCAB_VERSION / hub_id.replace("/", "--")
    if not (directory / "done").exists():
        directory.mkdir(parents=True, exist_ok=True)
        TOKENIZERS[hub_id][1](directory)
        (directory / "done").write_text("ok")
    return directory


# ------------------------------------------------------------------------------------------------ package stand-ins
def _torchaudio_without_extension() -> None:
    if "torchaudio" in sys.modules:
        return
    ext = types.ModuleType("torchaudio._extension")
    ext._IS_TORCHAUDIO_EXT_AVAILABLE = False
    ext._IS_ALIGN_AVAILABLE = False
    ext.fail_if_no_align = lambda function: function
    ext.__all__ = []
    sys.modules["torchaudio._extension"] = ext
    import torchaudio

    def load(path, frame_offset=0, num_frames=-1, normalize=True, channels_first=True, **_):
        import soundfile
        import torch

        frames = num_frames if num_frames > 0 else -1
        data, rate = soundfile.read(str(path), start=frame_offset, frames=frames, dtype="float32", always_2d=True)
        samples = torch.from_numpy(data)
        return (samples.T.contiguous() if channels_first else samples), rate

    torchaudio.load = load


def _torchvision_stand_in() -> None:
    if "torchvision" in sys.modules:
        return
    import enum

    import torch
    import torch.nn.functional as F

    def module(name: str, package: bool = False) -> types.ModuleType:
        made = types.ModuleType(name)
        if package:
            made.__path__ = []
        sys.modules[name] = made
        return made

    root, ops, misc = module("torchvision", True), module("torchvision.ops", True), module("torchvision.ops.misc")
    transforms, datasets = module("torchvision.transforms"), module("torchvision.datasets")
    root.__version__ = "0+clapkit-parity-stand-in"
    root.ops, ops.misc, root.transforms, root.datasets = ops, misc, transforms, datasets

    class FrozenBatchNorm2d(torch.nn.Module):
        """Batch norm with fixed statistics and affine terms, all buffers (torchvision's semantics)."""

        def __init__(self, num_features: int, eps: float = 1e-5):
            super().__init__()
            self.eps = eps
            self.register_buffer("weight", torch.ones(num_features))
            self.register_buffer("bias", torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

        def forward(self, x):
            scale = self.weight / torch.sqrt(self.running_var + self.eps)
            shift = self.bias - self.running_mean * scale
            return x * scale[None, :, None, None] + shift[None, :, None, None]

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    class Resize:
        """torchvision's Resize on tensors: F.interpolate, antialiased for bilinear/bicubic."""

        def __init__(self, size, interpolation=InterpolationMode.BILINEAR, antialias=True, **_):
            self.size, self.mode, self.antialias = list(size), interpolation.value, antialias

        def __call__(self, image):
            batch = image if image.dim() == 4 else image[None]
            smooth = self.antialias and self.mode in ("bilinear", "bicubic")
            out = F.interpolate(batch, size=self.size, mode=self.mode, align_corners=False, antialias=smooth)
            return out if image.dim() == 4 else out[0]

    class ImageOnly:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, *args, **kwargs):
            raise RuntimeError("torchvision stand-in: image transforms are not available in the parity references")

    misc.FrozenBatchNorm2d = FrozenBatchNorm2d
    transforms.Resize, transforms.InterpolationMode = Resize, InterpolationMode
    for name in ("Normalize", "Compose", "RandomResizedCrop", "ToTensor", "CenterCrop"):
        setattr(transforms, name, type(name, (ImageOnly,), {}))


def _offline_transformers() -> None:
    import transformers
    from transformers import AutoModel, AutoTokenizer, PreTrainedModel
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    real_model = PreTrainedModel.from_pretrained.__func__
    real_auto_model = AutoModel.from_pretrained.__func__
    real_tokenizer = PreTrainedTokenizerBase.from_pretrained.__func__

    built: dict = {}

    def model_from_pretrained(cls, name, *args, **kwargs):
        if str(name) in HUB_CONFIGS:  # random initialisation (post_init), once per process: then copies
            if (cls, str(name)) not in built:
                built[cls, str(name)] = cls(HUB_CONFIGS[str(name)]())
            return copy.deepcopy(built[cls, str(name)])
        if not Path(str(name)).exists():
            raise OSError(f"[parity offline] no local config for {name!r}: register_model() it")
        return real_model(cls, name, *args, **kwargs)

    def auto_model_from_pretrained(cls, name, *args, **kwargs):
        if str(name) in HUB_CONFIGS:
            return cls.from_config(HUB_CONFIGS[str(name)]())
        if not Path(str(name)).exists():
            raise OSError(f"[parity offline] no local config for {name!r}: register_model() it")
        return real_auto_model(cls, name, *args, **kwargs)

    def tokenizer_from_pretrained(cls, name, *args, **kwargs):
        if str(name) in TOKENIZERS:
            name = tokenizer_dir(str(name))
        return real_tokenizer(cls, name, *args, **kwargs)

    def auto_tokenizer_from_pretrained(cls, name, *args, **kwargs):
        fast = kwargs.pop("use_fast", True)
        if str(name) not in TOKENIZERS:
            raise OSError(f"[parity offline] no stand-in tokenizer for {name!r}: register_tokenizer() it")
        klass = getattr(transformers, TOKENIZERS[str(name)][0] + ("Fast" if fast else ""))
        return klass.from_pretrained(str(tokenizer_dir(str(name))), *args, **kwargs)

    PreTrainedModel.from_pretrained = classmethod(model_from_pretrained)
    AutoModel.from_pretrained = classmethod(auto_model_from_pretrained)
    PreTrainedTokenizerBase.from_pretrained = classmethod(tokenizer_from_pretrained)
    AutoTokenizer.from_pretrained = classmethod(auto_tokenizer_from_pretrained)


def _no_network() -> None:
    import socket

    def refuse(*args, **kwargs):
        raise OSError("[parity offline] network access is disabled in the parity references")

    socket.create_connection = refuse
    socket.socket.connect = refuse
    try:
        import wget

        wget.download = refuse
    except ImportError:
        pass


def msclap_wrapper(version: str, use_cuda: bool = False, config_changes: dict | None = None):
    """msclap's ``CLAPWrapper`` with random weights: it always ``torch.load``s a checkpoint (or downloads one when
    ``model_fp`` is None) and loads it with ``strict=False``, so during construction ``torch.load`` returns an empty
    ``{'model': {}}`` and the initialisation stays. Also builds the captioning model (``version='clapcap'``).
    ``config_changes`` override entries of the version's shipped config (e.g. ``{"mapping_type": "mlp"}``)."""
    import torch
    from msclap.CLAPWrapper import CLAPWrapper

    wrapper_class = CLAPWrapper
    if config_changes:

        class ChangedConfig(CLAPWrapper):
            def read_config_as_args(self, *args, **kwargs):
                parsed = super().read_config_as_args(*args, **kwargs)
                for key, value in config_changes.items():
                    setattr(parsed, key, value)
                return parsed

        wrapper_class = ChangedConfig
    real_load = torch.load
    torch.load = lambda *args, **kwargs: {"model": {}}
    try:
        return wrapper_class(model_fp="/nonexistent/random-init.pth", version=version, use_cuda=use_cuda)
    finally:
        torch.load = real_load


_INSTALLED = False


def install() -> None:
    """Apply every stand-in above (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("WANDB_MODE", "disabled"),
                       ("TOKENIZERS_PARALLELISM", "false")):  # fmt: skip
        os.environ.setdefault(key, value)
    _torchaudio_without_extension()
    _offline_transformers()
    _torchvision_stand_in()
    _no_network()
    _INSTALLED = True

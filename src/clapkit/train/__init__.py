"""Training CLAP: data, caption augmentation, the contrastive loss and the training loop (``clapkit train``).

The loop (``Trainer``, ``TrainResult``, ``train``) is imported on first use, so ``import clapkit.train.config`` or
``clapkit.train.loss`` does not pull in the data pipeline and the loop.
"""

from clapkit.train.config import TrainConfig, apply_overrides
from clapkit.train.loss import ContrastiveLoss, contrastive_loss

__all__ = ["ContrastiveLoss", "TrainConfig", "TrainResult", "Trainer", "apply_overrides", "contrastive_loss", "train"]

_FROM_LOOP = ("Trainer", "TrainResult", "train")


def __getattr__(name: str):
    if name in _FROM_LOOP:
        from clapkit.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'clapkit.train' has no attribute {name!r}")

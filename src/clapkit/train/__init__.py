"""Training CLAP: data, caption augmentation, the contrastive loss and the training loop (``clapkit train``)."""

from clapkit.train.config import TrainConfig, apply_overrides
from clapkit.train.loop import Trainer, TrainResult, train
from clapkit.train.loss import ContrastiveLoss, contrastive_loss

__all__ = ["ContrastiveLoss", "TrainConfig", "TrainResult", "Trainer", "apply_overrides", "contrastive_loss", "train"]

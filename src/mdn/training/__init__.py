"""Training: ``train`` fits a network that outputs mixtures, by minibatch maximum likelihood.

``loop`` holds ``train`` and its pieces; ``batches`` draws minibatches, ``optimizer`` holds
Adam and the flat gradient buffer, ``averaging`` the weight average, ``stopping`` the best
weights and patience of each member, ``ddp`` what changes inside a ``torch.distributed``
process group, and ``history`` what a run records.
"""

from mdn.params import LR_SCHEDULES
from mdn.training.history import History, TrainingDiverged
from mdn.training.loop import member_nll, train

__all__ = ["LR_SCHEDULES", "History", "TrainingDiverged", "member_nll", "train"]

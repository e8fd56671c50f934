"""PyTorch modules: the mixture density head, the MLP trunk and batched ensemble layers, the
network that joins them, and the fast path that differentiates it by hand."""

from mdn.nn.layers import ACTIVATIONS, MLP, BatchedLinear
from mdn.nn.network import MixtureDensityHead, MixtureDensityNetwork

__all__ = ["ACTIVATIONS", "MLP", "BatchedLinear", "MixtureDensityHead", "MixtureDensityNetwork"]

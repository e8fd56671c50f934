"""Everything that training does differently inside a ``torch.distributed`` process group."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["all_processes_agree", "distribute", "in_process_group", "process_mean", "rank"]


def in_process_group() -> bool:
    """Whether this process is part of an initialised ``torch.distributed`` process group.

    Returns
    -------
    bool
    """
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    """This process's rank in its process group (0 outside one).

    Returns
    -------
    int
    """
    return torch.distributed.get_rank() if in_process_group() else 0


def all_processes_agree(flag: bool, device: torch.device) -> bool:
    """``flag`` and-ed over the processes of a distributed run (itself otherwise).

    Parameters
    ----------
    flag : bool
    device : torch.device
        Where the backend reduces (the GPU for NCCL).

    Returns
    -------
    bool
    """
    if not in_process_group():
        return flag
    value = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
    return bool(value.item() > 0)


def process_mean(values: Tensor) -> Tensor:
    """``values`` averaged over the processes of a distributed run (themselves otherwise).

    All processes then take the same early-stopping decisions even where their arithmetic
    differs in the last bit.

    Parameters
    ----------
    values : Tensor

    Returns
    -------
    Tensor
    """
    if not in_process_group():
        return values
    values = values.clone()
    torch.distributed.all_reduce(values)
    return values / torch.distributed.get_world_size()


def distribute(
    network: nn.Module, batch: int, generators: list[torch.Generator], seed: int
) -> tuple[int, list[torch.Generator], nn.Module]:
    """What a fit inside a ``torch.distributed`` process group changes.

    Every process holds all rows and the same initial weights; each draws its own share of
    every minibatch (``batch // world_size`` rows, from its own stream), and
    DistributedDataParallel averages the gradients, so one step sees ``batch`` rows in all
    as in a single-process fit.

    Parameters
    ----------
    network : nn.Module
    batch : int
        Rows per minibatch over all processes.
    generators : list of torch.Generator
        Each member's minibatch stream in process 0.
    seed : int
        The fit's seed, from which the other processes' streams are derived.

    Returns
    -------
    batch : int
        This process's rows per minibatch.
    generators : list of torch.Generator
        This process's streams.
    wrapped : DistributedDataParallel
    """
    from torch.nn.parallel import DistributedDataParallel

    world, this = torch.distributed.get_world_size(), torch.distributed.get_rank()
    if batch < world:
        raise ValueError(
            f"batch={batch} cannot be shared among {world} processes; use batch >= {world}"
        )
    if this:
        generators = [
            torch.Generator().manual_seed(
                int(np.random.SeedSequence([seed, e, this]).generate_state(1)[0])
            )
            for e in range(len(generators))
        ]
    device = next(network.parameters()).device
    wrapped = DistributedDataParallel(
        network, device_ids=[device] if device.type == "cuda" else None
    )
    return batch // world, generators, wrapped

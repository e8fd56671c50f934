"""``Kernels`` for torch tensors: torch's own functions (its special functions, its fused
log-sum-exp and ``addcmul``, LAPACK's triangular solves), so that the mixture maths written
against the Array API runs on torch as fast as, and to the same bits as, torch code."""

from __future__ import annotations

from collections.abc import Sequence

import array_api_compat.torch as xp
import torch
from torch import Tensor

__all__ = ["TORCH_KERNELS"]


class TorchKernels:
    """The operations of ``mdn.distributions.kernels.Kernels`` on torch tensors."""

    xp = xp
    name = "torch"
    erfc = staticmethod(torch.special.erfc)
    ndtr = staticmethod(torch.special.ndtr)
    ndtri = staticmethod(torch.special.ndtri)
    addcmul = staticmethod(torch.addcmul)
    cholesky = staticmethod(torch.linalg.cholesky)
    solve = staticmethod(torch.linalg.solve)
    no_grad = staticmethod(torch.no_grad)

    @staticmethod
    def logsumexp(x: Tensor, axis: int) -> Tensor:
        return torch.logsumexp(x, dim=axis)

    @staticmethod
    def log_softmax(x: Tensor, axis: int) -> Tensor:
        return torch.log_softmax(x, dim=axis)

    @staticmethod
    def softmax(x: Tensor, axis: int) -> Tensor:
        return torch.softmax(x, dim=axis)

    @staticmethod
    def exp_neg_square(x: Tensor) -> Tensor:
        return x.square().neg_().exp_()  # in place: two temporaries fewer, measured 1.4x

    @staticmethod
    def nansum(x: Tensor, axis: int) -> Tensor:
        return x.nansum(axis)

    @staticmethod
    def solve_triangular(a: Tensor, b: Tensor, *, upper: bool) -> Tensor:
        return torch.linalg.solve_triangular(a, b, upper=upper)

    @staticmethod
    def cholesky_ex(a: Tensor) -> tuple[Tensor, int]:
        chol, info = torch.linalg.cholesky_ex(a)
        return chol, int((info != 0).sum())

    @staticmethod
    def take(x: Tensor, index: Tensor, axis: int) -> Tensor:
        return x.index_select(axis, index)

    @staticmethod
    def take_along_axis(x: Tensor, index: Tensor, axis: int) -> Tensor:
        return x.gather(axis, index)

    @staticmethod
    def contiguous(x: Tensor) -> Tensor:
        return x.contiguous()

    @staticmethod
    def as_array(values: object, dtype: torch.dtype, device: torch.device) -> Tensor:
        return torch.as_tensor(values, dtype=dtype, device=device)

    @staticmethod
    def generator(source: torch.Generator | None) -> torch.Generator | None:
        if source is not None and not isinstance(source, torch.Generator):
            raise TypeError(
                f"a mixture of torch tensors samples with a torch.Generator or None, got "
                f"{type(source).__name__}"
            )
        return source

    @staticmethod
    def draw_components(weights: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.multinomial(weights, n, replacement=True, generator=generator)

    @staticmethod
    def standard_normal(
        shape: Sequence[int], like: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        return torch.randn(tuple(shape), generator=generator, dtype=like.dtype, device=like.device)


TORCH_KERNELS = TorchKernels()

"""What the mixture maths needs beyond the Array API, for each array library it runs on.

``GaussianMixture`` is written once against an array namespace (``array_api_compat``): the
same code runs on torch tensors (``MDN``) and on NumPy arrays (``mdn.onnx.OnnxPredictor``,
where torch is not installed). The Array API lacks a few things that the maths needs: the
normal CDF and its inverse, a log-sum-exp, triangular solves, random draws, a switch for
autograd. ``Kernels`` names them; ``kernels_for`` finds the implementation of an array's
library, importing the torch one only for torch tensors (so that NumPy work never imports
torch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import array_api_compat

__all__ = ["Kernels", "kernels_for"]


class Kernels(Protocol):
    """The operations of one array library that the Array API does not provide.

    Attributes
    ----------
    xp : module
        The library's Array API namespace (``array_api_compat``'s).
    name : str
        "torch" or "numpy".
    """

    xp: Any
    name: str

    def erfc(self, x: Any) -> Any:
        """The complementary error function, elementwise.

        Parameters
        ----------
        x : array

        Returns
        -------
        array
            ``erfc(x)``, with the relative precision of the tail kept.
        """

    def ndtr(self, x: Any) -> Any:
        """The standard normal CDF, with the relative precision of the lower tail kept.

        Parameters
        ----------
        x : array

        Returns
        -------
        array
        """

    def ndtri(self, p: Any) -> Any:
        """The standard normal quantile function (the inverse of ``ndtr``).

        Parameters
        ----------
        p : array
            Probabilities in (0, 1).

        Returns
        -------
        array
        """

    def logsumexp(self, x: Any, axis: int) -> Any:
        """``log(sum(exp(x)))`` along ``axis`` without overflow; -inf where all are -inf.

        Parameters
        ----------
        x : array
        axis : int

        Returns
        -------
        array
            ``x``'s shape without ``axis``.
        """

    def log_softmax(self, x: Any, axis: int) -> Any:
        """``x - logsumexp(x)`` along ``axis``.

        Parameters
        ----------
        x : array
        axis : int

        Returns
        -------
        array
        """

    def softmax(self, x: Any, axis: int) -> Any:
        """``exp(log_softmax(x))`` along ``axis``.

        Parameters
        ----------
        x : array
        axis : int

        Returns
        -------
        array
        """

    def exp_neg_square(self, x: Any) -> Any:
        """``exp(-x**2)``, elementwise, with as few temporaries as the library allows.

        Parameters
        ----------
        x : array

        Returns
        -------
        array
        """

    def nansum(self, x: Any, axis: int) -> Any:
        """The sum along ``axis`` with NaN counted as 0.

        Parameters
        ----------
        x : array
        axis : int

        Returns
        -------
        array
        """

    def solve_triangular(self, a: Any, b: Any, *, upper: bool) -> Any:
        """``inverse(a) @ b`` for triangular matrices.

        Parameters
        ----------
        a : array of shape (..., D, D)
            Triangular with a non-zero diagonal.
        b : array of shape (..., D, M)
        upper : bool
            Whether ``a`` is upper (else lower) triangular.

        Returns
        -------
        array of shape (..., D, M)
        """

    def solve(self, a: Any, b: Any) -> Any:
        """``inverse(a) @ b`` for matrices and vectors.

        Parameters
        ----------
        a : array of shape (..., D, D)
        b : array of shape (..., D)

        Returns
        -------
        array of shape (..., D)
        """

    def cholesky(self, a: Any) -> Any:
        """The lower Cholesky factor of each matrix.

        Parameters
        ----------
        a : array of shape (..., D, D)
            Symmetric positive-definite; the library's error is raised where one is not.

        Returns
        -------
        array of shape (..., D, D)
        """

    def cholesky_ex(self, a: Any) -> tuple[Any, int]:
        """The lower Cholesky factors, and how many matrices are not positive-definite.

        Parameters
        ----------
        a : array of shape (..., D, D)

        Returns
        -------
        chol : array of shape (..., D, D)
            Not meaningful for the matrices that failed.
        failed : int
        """

    def addcmul(self, a: Any, b: Any, c: Any) -> Any:
        """``a + b * c``, fused where the library fuses it.

        Parameters
        ----------
        a, b, c : array

        Returns
        -------
        array
        """

    def take(self, x: Any, index: Any, axis: int) -> Any:
        """The entries of ``x`` at ``index`` (non-negative) along ``axis``.

        Parameters
        ----------
        x : array
        index : integer array of shape (n,)
        axis : int

        Returns
        -------
        array
            ``x``'s shape with ``n`` along ``axis``.
        """

    def take_along_axis(self, x: Any, index: Any, axis: int) -> Any:
        """The entries of ``x`` at ``index`` (non-negative, of ``x``'s number of dimensions)
        along ``axis``.

        Parameters
        ----------
        x : array
        index : integer array
        axis : int

        Returns
        -------
        array
            ``index``'s shape.
        """

    def contiguous(self, x: Any) -> Any:
        """``x`` in row-major memory order.

        Parameters
        ----------
        x : array

        Returns
        -------
        array
        """

    def as_array(self, values: Any, dtype: Any, device: Any) -> Any:
        """``values`` as an array of this library.

        Parameters
        ----------
        values : array-like
        dtype : dtype
        device : device or None

        Returns
        -------
        array
        """

    def generator(self, source: Any) -> Any:
        """The random generator that ``source`` names, for the draws of one call.

        Parameters
        ----------
        source : generator, seed or None
            torch: a ``torch.Generator`` or None (torch's global one); NumPy: anything
            ``numpy.random.default_rng`` takes (None: fresh entropy).

        Returns
        -------
        the library's generator, or None for torch's global one
        """

    def draw_components(self, weights: Any, n: int, generator: Any) -> Any:
        """Component indices drawn with replacement.

        Parameters
        ----------
        weights : array of shape (M, K)
            Each row's component weights.
        n : int
            Draws per row.
        generator : the library's random generator, or None where it has a global one

        Returns
        -------
        integer array of shape (M, n)
        """

    def standard_normal(self, shape: Sequence[int], like: Any, generator: Any) -> Any:
        """Standard normal draws.

        Parameters
        ----------
        shape : sequence of int
        like : array
            Whose dtype and device the draws take.
        generator : the library's random generator, or None where it has a global one

        Returns
        -------
        array of ``shape``
        """

    def no_grad(self) -> contextlib.AbstractContextManager:
        """A block in which no gradient is recorded.

        Returns
        -------
        context manager
        """


def kernels_for(array: Any) -> Kernels:
    """The kernels of the library that ``array`` belongs to.

    Parameters
    ----------
    array : torch.Tensor or numpy.ndarray

    Returns
    -------
    Kernels

    Raises
    ------
    TypeError
        For anything but a torch tensor or a NumPy array.
    """
    if array_api_compat.is_numpy_array(array):
        from mdn.distributions.numpy_kernels import NUMPY_KERNELS

        return NUMPY_KERNELS
    if array_api_compat.is_torch_array(array):
        from mdn.distributions.torch_kernels import TORCH_KERNELS

        return TORCH_KERNELS
    raise TypeError(f"expected a torch.Tensor or a NumPy array, got {type(array).__name__}")

"""Per-task gradients on the shared parameters, flattened to one row per task."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["task_gradients", "write_gradients"]


def task_gradients(losses: Tensor, params: Sequence[Tensor]) -> Tensor:
    """The gradient of each loss with respect to ``params``, one flat row per loss.

    The graph is kept (``retain_graph``) so the caller can still backpropagate
    the combined loss. A parameter a loss does not reach gets a zero gradient.

    Args:
        losses: ``[T]`` scalar losses.
        params: The parameters, ``P`` elements in all.

    Returns:
        ``[T, P]`` gradients.

    Example:
        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> task_gradients(torch.stack([w.sum(), (w * w).sum()]), [w])
        tensor([[1., 1.],
                [2., 4.]])
    """
    rows = []
    grads: tuple[Tensor | None, ...]
    for loss in losses.unbind():
        if loss.requires_grad:
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        else:
            grads = (None,) * len(params)
        rows.append(
            torch.cat(
                [
                    (torch.zeros_like(p) if g is None else g).reshape(-1)
                    for g, p in zip(grads, params, strict=True)
                ]
            )
        )
    return torch.stack(rows)  # [T, P]


def write_gradients(params: Sequence[Tensor], flat: Tensor) -> None:
    """Set ``p.grad`` of each parameter from its slice of the flat ``[P]`` vector ``flat``."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
    if offset != flat.numel():
        raise ValueError(f"flat gradient has {flat.numel()} elements, parameters {offset}")

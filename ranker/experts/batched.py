"""Same-shaped MLP experts evaluated together as batched matrix products.

A CGC/PLE level runs many small MLP experts of one shape; a Python loop of
``nn.Linear`` calls leaves a single CPU core mostly idle between small GEMMs.
:func:`run_mlp_group` evaluates a group of them at once, reading each layer's
weights from the experts themselves (stacked per call: the parameters, their
names in the state dict and checkpoints stay those of the separate experts):

- one input for all (``[B, in]``, e.g. a first level where every expert reads
  the embedded features): one GEMM against the experts' first-layer weights
  side by side, ``[B, in] x [in, E * h1]``;
- one input per expert (``[E, B, in]``, an upper PLE level): one ``baddbmm``;
- later layers: one ``baddbmm`` over the ``E`` experts.

The results equal the loop's up to float rounding (a test checks outputs and
gradients). With dropout the masks are drawn for the whole group at once, so
they differ from the loop's draws (same distribution).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ranker.experts.mlp import MLPExpert

__all__ = ["mlp_signature", "run_mlp_group"]


def mlp_signature(expert: object) -> tuple[int, tuple[int, ...], float] | None:
    """``(in_dim, hidden widths, dropout)`` of a plain :class:`MLPExpert`; None for others.

    Experts with equal signatures can run as one group. Subclasses are left out:
    they may change the forward.

    Example:
        >>> mlp_signature(MLPExpert(8, (16, 4)))
        (8, (16, 4), 0.0)
    """
    if type(expert) is not MLPExpert:
        return None
    return expert.in_dim, tuple(lin.out_features for lin in expert.linears), expert.dropout


def run_mlp_group(experts: Sequence[MLPExpert], x: Tensor) -> Tensor:
    """Outputs of ``E`` MLP experts of one signature, as one batched computation.

    Args:
        experts: ``E`` experts with one :func:`mlp_signature`.
        x: ``[B, in]`` read by every expert, or ``[E, B, in]``, expert ``e`` reading ``x[e]``.

    Returns:
        ``[E, B, out]``: expert ``e``'s output at ``[e]``.

    Example:
        >>> experts = [MLPExpert(8, (16, 4)) for _ in range(3)]
        >>> run_mlp_group(experts, torch.zeros(5, 8)).shape
        torch.Size([3, 5, 4])
    """
    n = len(experts)
    p = experts[0].dropout
    training = experts[0].training
    h = x
    for j in range(len(experts[0].linears)):
        layers = [e.linears[j] for e in experts]
        w = torch.stack([lin.weight for lin in layers])  # [E, out, in]
        b = torch.stack([lin.bias for lin in layers])  # [E, out]
        width = w.shape[1]
        if h.dim() == 2:  # one input: all experts' units in one GEMM
            y = F.linear(h, w.reshape(n * width, -1), b.reshape(-1))  # [B, E * out]
            h = y.view(-1, n, width).transpose(0, 1)  # [E, B, out] (a view)
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))  # [E, B, out]
        h = torch.relu(h)
        if p > 0:
            h = F.dropout(h, p, training)
    return h

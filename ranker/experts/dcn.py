"""DCN-v2 cross-network expert (Wang et al., WWW 2021).

Each cross layer keeps the input ``x0`` and forms explicit feature crosses of
growing order: ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l`` (full-rank ``W_l``);
a final ``Linear -> ReLU`` projects to the expert width.
"""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from ranker.experts.base import Expert, ExpertInput

__all__ = ["CrossLayer", "DCNExpert"]


class CrossLayer(nn.Module):
    """One DCN-v2 cross layer: ``x0 * (W x + b) + x``.

    Args:
        dim: Width of ``x0`` and ``x``.

    Example:
        >>> import torch
        >>> CrossLayer(3)(torch.ones(2, 3), torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        """Cross ``x`` ``[B, dim]`` with the input ``x0`` ``[B, dim]``; returns ``[B, dim]``."""
        return x0 * self.linear(x) + x  # [B, dim]


class DCNExpert(Expert):
    """A stack of cross layers on the flat input, then ``Linear -> ReLU`` to ``out_dim``.

    Args:
        in_dim: Width of the flat input.
        n_layers: Number of cross layers (>= 1).
        out_dim: Output width.

    Example:
        >>> import torch
        >>> DCNExpert(6, 2, 4)(torch.zeros(5, 6)).shape
        torch.Size([5, 4])
    """

    def __init__(self, in_dim: int, n_layers: int, out_dim: int) -> None:
        super().__init__()
        if n_layers < 1 or min(in_dim, out_dim) < 1:
            raise ValueError(
                f"DCNExpert needs n_layers >= 1 and widths >= 1, got in_dim={in_dim}, "
                f"n_layers={n_layers}, out_dim={out_dim}"
            )
        self.in_dim, self.out_dim = in_dim, out_dim
        self.layers = nn.ModuleList([CrossLayer(in_dim) for _ in range(n_layers)])
        self.project = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU())

    def output_weights(self) -> list[Tensor]:
        """The output projection's weight ``[out_dim, in_dim]``."""
        return [cast(nn.Linear, self.project[0]).weight]

    def forward(self, inp: ExpertInput | Tensor) -> Tensor:
        """Map ``inp.flat`` ``[B, in_dim]`` (or a bare tensor) to ``[B, out_dim]``."""
        x0 = ExpertInput.of(inp).flat  # [B, in_dim]
        x = x0
        for layer in self.layers:
            x = layer(x0, x)  # [B, in_dim]
        return self.project(x)  # type: ignore[no-any-return]

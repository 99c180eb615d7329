"""Multi-layer perceptron expert (Linear -> ReLU -> Dropout, per hidden layer)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ranker.experts.base import Expert, ExpertInput

__all__ = ["MLPExpert", "make_mlp"]


def make_mlp(in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Stack ``Linear -> ReLU (-> Dropout)`` layers of the given widths.

    Args:
        in_dim: Input width.
        hidden: Width of each layer; empty gives an identity.
        dropout: Dropout probability after each ReLU (0 = none).

    Example:
        >>> make_mlp(8, (16, 4))[-2].out_features
        4
    """
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        if h < 1:
            raise ValueError(f"hidden layer widths must be >= 1, got {tuple(hidden)}")
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers)


class MLPExpert(Expert):
    """An MLP expert: ``[B, in_dim] -> [B, hidden[-1]]``.

    Args:
        in_dim: Input width.
        hidden: Hidden layer widths (at least one).
        dropout: Dropout probability after each layer.

    Example:
        >>> import torch
        >>> MLPExpert(8, (16, 4))(torch.zeros(3, 8)).shape
        torch.Size([3, 4])
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("MLPExpert needs at least one hidden layer width, got ()")
        self.in_dim = in_dim
        self.out_dim = hidden[-1]
        self.dropout = float(dropout)
        self.net = make_mlp(in_dim, hidden, dropout)
        # typed view of the layers, for the batched evaluation of expert groups
        self.linears = tuple(m for m in self.net if isinstance(m, nn.Linear))

    def output_weights(self) -> list[Tensor]:
        """The last Linear's weight ``[out_dim, hidden[-2] or in_dim]``."""
        return [self.linears[-1].weight]

    def forward(self, inp: ExpertInput | Tensor) -> Tensor:
        """Map ``inp.flat`` ``[B, in_dim]`` (or a bare tensor) to ``[B, out_dim]``."""
        return self.net(ExpertInput.of(inp).flat)  # type: ignore[no-any-return]

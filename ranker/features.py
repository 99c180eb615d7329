"""Feature specs and the embedding layer that turns raw features into one dense vector.

Categorical ids get one embedding row each; ids outside ``[0, vocab_size)``
(unseen or negative) are *clipped* to one shared out-of-vocabulary row (index
``vocab_size``), never hashed, so an id never collides with a known one.
Numeric features are standardized with the training mean and std, which the
layer keeps as buffers (saved with the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ranker.tasks import check_name

__all__ = [
    "CategoricalFeature",
    "FeatureEmbedding",
    "FeatureSpec",
    "NumericFeature",
    "validate_features",
]


@dataclass(frozen=True)
class CategoricalFeature:
    """An integer-id feature embedded in ``dim`` dimensions.

    Args:
        name: Feature name; keys the data arrays.
        vocab_size: Number of known ids ``0..vocab_size-1``; others share one OOV row.
        dim: Embedding dimension.

    Example:
        >>> CategoricalFeature("item_id", vocab_size=10_000, dim=16).dim
        16
    """

    name: str
    vocab_size: int
    dim: int = 16

    def __post_init__(self) -> None:
        check_name("feature", self.name)
        if not isinstance(self.vocab_size, int) or self.vocab_size < 1:
            raise ValueError(
                f"feature {self.name!r}: vocab_size must be an int >= 1, got {self.vocab_size!r}"
            )
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"feature {self.name!r}: dim must be an int >= 1, got {self.dim!r}")


@dataclass(frozen=True)
class NumericFeature:
    """A real-valued feature, standardized with the training mean and std.

    Args:
        name: Feature name; keys the data arrays.

    Example:
        >>> NumericFeature("price").name
        'price'
    """

    name: str

    def __post_init__(self) -> None:
        check_name("feature", self.name)


FeatureSpec = CategoricalFeature | NumericFeature


def validate_features(features: Sequence[FeatureSpec]) -> tuple[FeatureSpec, ...]:
    """Check a feature list: non-empty, specs of a known kind, unique names.

    Args:
        features: Feature specs of one model.

    Returns:
        The specs as a tuple.

    Example:
        >>> len(validate_features([NumericFeature("a"), CategoricalFeature("b", 5)]))
        2
    """
    features = tuple(features)
    if not features:
        raise ValueError("no features given; a model needs at least one feature spec")
    for f in features:
        if not isinstance(f, CategoricalFeature | NumericFeature):
            raise ValueError(
                f"unknown feature spec {f!r}; valid: CategoricalFeature, NumericFeature"
            )
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate feature names {dupes}; feature names must be unique")
    return features


class FeatureEmbedding(nn.Module):
    """Embeds categorical ids and standardizes numerics into one vector per row.

    Categorical features come in spec order as columns of one ``[B, n_cat]`` int64
    tensor, numerics as columns of one ``[B, n_num]`` float32 tensor; the output
    concatenates the embeddings then the standardized numerics.

    Args:
        features: Feature specs, in the order of the model.

    Example:
        >>> emb = FeatureEmbedding([CategoricalFeature("u", 10, 4), NumericFeature("x")])
        >>> emb(torch.tensor([[3], [99]]), torch.zeros(2, 1)).shape
        torch.Size([2, 5])
    """

    vocab_sizes: Tensor
    numeric_mean: Tensor
    numeric_std: Tensor
    numeric_fitted: Tensor

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        super().__init__()
        features = validate_features(features)
        self.categorical = tuple(f for f in features if isinstance(f, CategoricalFeature))
        self.numeric = tuple(f for f in features if isinstance(f, NumericFeature))
        # One table per feature, row vocab_size is the shared OOV row.
        tables = [nn.Embedding(f.vocab_size + 1, f.dim) for f in self.categorical]
        for table in tables:
            nn.init.normal_(table.weight, std=0.05)
        self.tables = nn.ModuleList(tables)
        self.register_buffer(
            "vocab_sizes", torch.tensor([f.vocab_size for f in self.categorical], dtype=torch.long)
        )
        n_num = len(self.numeric)
        self.register_buffer("numeric_mean", torch.zeros(n_num))
        self.register_buffer("numeric_std", torch.ones(n_num))
        self.register_buffer("numeric_fitted", torch.tensor(False))
        self.out_dim = sum(f.dim for f in self.categorical) + n_num

    def fit_numeric(self, numeric: Tensor) -> None:
        """Store the mean and std of training numerics (std 0 is kept as 1).

        Args:
            numeric: ``[N, n_num]`` float training values.
        """
        with torch.no_grad():
            if numeric.shape[0] > 0 and numeric.shape[1] > 0:
                mean = numeric.double().mean(0)
                std = numeric.double().std(0, unbiased=False)
                std = torch.where(std > 1e-12, std, torch.ones_like(std))
                self.numeric_mean.copy_(mean.float())
                self.numeric_std.copy_(std.float())
            self.numeric_fitted.fill_(True)

    def forward(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        """Embed one batch.

        Args:
            categorical: ``[B, n_cat]`` int64 ids (any value; out-of-range -> OOV row).
            numeric: ``[B, n_num]`` float32 raw values.

        Returns:
            ``[B, out_dim]`` float32.
        """
        parts: list[Tensor] = []
        if self.categorical:
            vocab = self.vocab_sizes  # [n_cat]
            ids = torch.where((categorical >= 0) & (categorical < vocab), categorical, vocab)
            parts.extend(table(ids[:, j]) for j, table in enumerate(self.tables))  # [B, dim_j]
        if self.numeric:
            parts.append((numeric - self.numeric_mean) / self.numeric_std)  # [B, n_num]
        return torch.cat(parts, dim=1)  # [B, out_dim]

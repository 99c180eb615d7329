"""Feature specs and the embedding layer that turns raw features into one dense vector.

Categorical ids get one embedding row each; ids outside ``[0, vocab_size)``
(unseen or negative) are *clipped* to one shared out-of-vocabulary row (index
``vocab_size``), never hashed, so an id never collides with a known one.
Numeric features are standardized with the training mean and std, which the
layer keeps as buffers (saved with the weights).

Sequence (multi-valued) features are ``[n, L]`` int id arrays, e.g. a user's
last ``L`` clicked videos, pooled to one ``dim``-wide vector per row by mean,
sum or max over their non-padding entries. Negative ids are padding (``-1`` by
convention); ids ``>= vocab_size`` go to the OOV row as for categoricals; a row
of padding only pools to zeros. A sequence may *share* the embedding table of a
categorical feature over the same ids (``shares="video_id"``: a clicked video
in the history and the candidate video are the same row), so rare ids seen
mostly as candidates still get a trained history vector, and no second
``vocab x dim`` table is learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ranker.tasks import check_name

__all__ = [
    "POOLINGS",
    "CategoricalFeature",
    "FeatureEmbedding",
    "FeatureSpec",
    "NumericFeature",
    "SequenceFeature",
    "pool_sequence",
    "validate_features",
]

POOLINGS = ("mean", "sum", "max")
"""Valid :attr:`SequenceFeature.pooling` values."""


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


@dataclass(frozen=True)
class SequenceFeature:
    """A multi-valued id feature (``[n, length]`` ids, negative = padding) pooled to ``dim``.

    Args:
        name: Feature name; keys the data arrays.
        vocab_size: Number of known ids ``0..vocab_size-1``; larger ids share one OOV row.
        length: ``L``, the columns of the id array (pad shorter sequences with ``-1``).
        dim: Embedding dimension (must equal the shared feature's when ``shares`` is set).
        pooling: ``"mean"``, ``"sum"`` or ``"max"`` over the non-padding entries.
        shares: Name of a :class:`CategoricalFeature` of the same model whose table
            embeds these ids (same ``vocab_size`` and ``dim``); None: a table of its own.

    Example:
        >>> SequenceFeature("hist_video", 7583, length=10, shares="video_id").pooling
        'mean'
    """

    name: str
    vocab_size: int
    length: int
    dim: int = 16
    pooling: str = "mean"
    shares: str | None = None

    def __post_init__(self) -> None:
        check_name("feature", self.name)
        for key in ("vocab_size", "length", "dim"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"feature {self.name!r}: {key} must be an int >= 1, got {value!r}"
                )
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"feature {self.name!r}: pooling {self.pooling!r} unknown; valid: {list(POOLINGS)}"
            )
        if self.shares is not None and not isinstance(self.shares, str):
            raise ValueError(
                f"feature {self.name!r}: shares must be a feature name or None, "
                f"got {self.shares!r}"
            )


FeatureSpec = CategoricalFeature | NumericFeature | SequenceFeature


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
        if not isinstance(f, CategoricalFeature | NumericFeature | SequenceFeature):
            raise ValueError(
                f"unknown feature spec {f!r}; valid: CategoricalFeature, NumericFeature, "
                "SequenceFeature"
            )
    names = [f.name for f in features]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate feature names {dupes}; feature names must be unique")
    categorical = {f.name: f for f in features if isinstance(f, CategoricalFeature)}
    for f in features:
        if not isinstance(f, SequenceFeature) or f.shares is None:
            continue
        owner = categorical.get(f.shares)
        if owner is None:
            raise ValueError(
                f"sequence feature {f.name!r} shares {f.shares!r}, which is not a categorical "
                f"feature of the model; categorical features: {sorted(categorical)}"
            )
        if (owner.vocab_size, owner.dim) != (f.vocab_size, f.dim):
            raise ValueError(
                f"sequence feature {f.name!r} shares {f.shares!r} but has (vocab_size, dim) "
                f"{(f.vocab_size, f.dim)}; the shared table has {(owner.vocab_size, owner.dim)}"
            )
    return features


def pool_sequence(emb: Tensor, mask: Tensor, pooling: str) -> Tensor:
    """Pool embedded sequences over their non-padding entries.

    Args:
        emb: ``[B, L, d]`` embeddings (padding positions may hold anything).
        mask: ``[B, L]`` bool, True where the entry is real.
        pooling: ``"mean"``, ``"sum"`` or ``"max"``.

    Returns:
        ``[B, d]``; zeros for a row with no real entry.

    Example:
        >>> emb = torch.tensor([[[1.0], [3.0], [99.0]]])
        >>> pool_sequence(emb, torch.tensor([[True, True, False]]), "mean")
        tensor([[2.]])
    """
    keep = mask.unsqueeze(-1)  # [B, L, 1]
    if pooling == "max":
        top = emb.masked_fill(~keep, float("-inf")).amax(1)  # [B, d]
        return torch.where(mask.any(1, keepdim=True), top, torch.zeros_like(top))
    total = (emb * keep.to(emb.dtype)).sum(1)  # [B, d]
    if pooling == "sum":
        return total
    if pooling == "mean":
        return total / mask.sum(1, keepdim=True).clamp(min=1).to(emb.dtype)
    raise ValueError(f"pooling {pooling!r} unknown; valid: {list(POOLINGS)}")


class FeatureEmbedding(nn.Module):
    """Embeds ids, pools sequences and standardizes numerics into one vector per row.

    Ids come as columns of one ``[B, n_cat + sum(L_s)]`` int64 tensor: one column
    per categorical feature (spec order), then ``L_s`` columns per sequence
    feature (spec order); numerics as columns of one ``[B, n_num]`` float32
    tensor (:func:`ranker.data.encode_features` builds both). The output
    concatenates the categorical embeddings, the pooled sequences, then the
    standardized numerics.

    Args:
        features: Feature specs, in the order of the model.

    Example:
        >>> emb = FeatureEmbedding([CategoricalFeature("u", 10, 4), NumericFeature("x")])
        >>> emb(torch.tensor([[3], [99]]), torch.zeros(2, 1)).shape
        torch.Size([2, 5])
        >>> seq = FeatureEmbedding([SequenceFeature("h", 10, length=3, dim=4)])
        >>> seq(torch.tensor([[1, 2, -1]]), torch.zeros(1, 0)).shape
        torch.Size([1, 4])
    """

    vocab_sizes: Tensor
    numeric_mean: Tensor
    numeric_std: Tensor
    numeric_fitted: Tensor
    _row_offsets: Tensor

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        super().__init__()
        features = validate_features(features)
        self.categorical = tuple(f for f in features if isinstance(f, CategoricalFeature))
        self.sequences = tuple(f for f in features if isinstance(f, SequenceFeature))
        self.numeric = tuple(f for f in features if isinstance(f, NumericFeature))
        # One table per feature, row vocab_size is the shared OOV row.
        tables = [nn.Embedding(f.vocab_size + 1, f.dim) for f in self.categorical]
        own = [nn.Embedding(f.vocab_size + 1, f.dim) for f in self.sequences if f.shares is None]
        for table in tables + own:
            nn.init.normal_(table.weight, std=0.05)
        self.tables = nn.ModuleList(tables)
        self._tables = tuple(tables)  # typed view of the same modules
        # Consecutive categoricals of one width are looked up together: their tables are
        # concatenated per call and read with offset ids, so the backward pass builds one
        # dense gradient for the run instead of one per table. The parameters stay one
        # table per feature. Lookups are index_select, whose backward (an index_add) is
        # ~4x cheaper on CPU than F.embedding's sorting one.
        self._runs: list[tuple[int, int]] = []
        for j, f in enumerate(self.categorical):
            if self._runs and self.categorical[self._runs[-1][0]].dim == f.dim:
                self._runs[-1] = (self._runs[-1][0], j + 1)
            else:
                self._runs.append((j, j + 1))
        sizes = torch.tensor([f.vocab_size + 1 for f in self.categorical], dtype=torch.long)
        offsets = torch.zeros_like(sizes)
        for start, end in self._runs:
            offsets[start:end] = torch.cumsum(sizes[start:end], 0) - sizes[start:end]
        self.register_buffer("_row_offsets", offsets, persistent=False)
        self.sequence_tables = nn.ModuleList(own)
        by_name = {f.name: t for f, t in zip(self.categorical, tables, strict=True)}
        own_iter = iter(own)
        # Typed view: the table of each sequence (its own, or the shared categorical's).
        self._sequence_tables = tuple(
            next(own_iter) if f.shares is None else by_name[f.shares] for f in self.sequences
        )
        self.register_buffer(
            "vocab_sizes", torch.tensor([f.vocab_size for f in self.categorical], dtype=torch.long)
        )
        n_num = len(self.numeric)
        self.register_buffer("numeric_mean", torch.zeros(n_num))
        self.register_buffer("numeric_std", torch.ones(n_num))
        self.register_buffer("numeric_fitted", torch.tensor(False))
        self.id_dims = tuple(f.dim for f in self.categorical) + tuple(
            f.dim for f in self.sequences
        )
        """Width of each id block of the output (categoricals, then sequences)."""
        self.n_id_columns = len(self.categorical) + sum(f.length for f in self.sequences)
        self.out_dim = sum(self.id_dims) + n_num

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
            categorical: ``[B, n_cat + sum(L_s)]`` int64 ids: categoricals (any value;
                out-of-range -> OOV row), then each sequence's ``L_s`` ids (negative:
                padding; ``>= vocab_size``: OOV row).
            numeric: ``[B, n_num]`` float32 raw values.

        Returns:
            ``[B, out_dim]`` float32.
        """
        if categorical.shape[1] != self.n_id_columns:
            raise ValueError(
                f"expected {self.n_id_columns} id columns ({len(self.categorical)} categorical "
                f"+ sequence lengths {[f.length for f in self.sequences]}), "
                f"got {categorical.shape[1]}"
            )
        parts: list[Tensor] = []
        n_cat = len(self.categorical)
        if n_cat:
            vocab = self.vocab_sizes  # [n_cat]
            cat = categorical[:, :n_cat]
            ids = torch.where((cat >= 0) & (cat < vocab), cat, vocab)
            rows = ids + self._row_offsets  # [B, n_cat], rows of each run's stacked tables
            for start, end in self._runs:
                if end - start == 1:
                    parts.append(self._tables[start].weight.index_select(0, ids[:, start]))
                    continue
                weight = torch.cat([t.weight for t in self._tables[start:end]])
                looked_up = weight.index_select(0, rows[:, start:end].reshape(-1))  # [B * k, dim]
                # [B, k * dim], features in spec order
                parts.append(looked_up.view(rows.shape[0], -1))
        start = n_cat
        for f, table in zip(self.sequences, self._sequence_tables, strict=True):
            seq = categorical[:, start : start + f.length]  # [B, L]
            start += f.length
            mask = seq >= 0  # [B, L]
            rows = torch.where(seq < f.vocab_size, seq.clamp(min=0), f.vocab_size)
            emb = table.weight.index_select(0, rows.reshape(-1)).view(*rows.shape, -1)
            parts.append(pool_sequence(emb, mask, f.pooling))  # [B, dim]
        if self.numeric:
            parts.append((numeric - self.numeric_mean) / self.numeric_std)  # [B, n_num]
        return torch.cat(parts, dim=1)  # [B, out_dim]

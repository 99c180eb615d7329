"""The multi-task model: embedding -> backbone -> heads, and builders for each architecture.

A model is composed of named parts passed in, so a new backbone or head type
is a new part, not a new model class. It carries a :class:`ModelSpec` (feature
specs, task specs, architecture name and config) so that a checkpoint can
rebuild it; :data:`BUILDERS` is the one place where an architecture name maps
to its config class and builder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ranker.backbones.base import Backbone
from ranker.backbones.mmoe import MMoE
from ranker.experts.mlp import MLPExpert
from ranker.features import FeatureEmbedding, FeatureSpec, validate_features
from ranker.heads.base import Heads
from ranker.heads.towers import Towers
from ranker.tasks import TaskSpec, validate_tasks

__all__ = ["BUILDERS", "MMoEConfig", "ModelSpec", "MultiTaskModel", "build_mmoe"]


@dataclass(frozen=True)
class MMoEConfig:
    """Hyperparameters of an MMoE ranker with MLP experts and towers.

    Args:
        n_experts: Number of shared MLP experts.
        expert_hidden: Hidden widths of each expert; the last is the expert output.
        tower_hidden: Hidden widths of each task tower (may be empty).
        dropout: Dropout probability in experts and towers.

    Example:
        >>> MMoEConfig(n_experts=8).expert_hidden
        (128, 64)
    """

    n_experts: int = 4
    expert_hidden: tuple[int, ...] = (128, 64)
    tower_hidden: tuple[int, ...] = (32,)
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.n_experts, int) or self.n_experts < 1:
            raise ValueError(f"MMoEConfig.n_experts must be an int >= 1, got {self.n_experts!r}")
        if not self.expert_hidden or any(int(h) < 1 for h in self.expert_hidden):
            raise ValueError(
                f"MMoEConfig.expert_hidden must be non-empty widths >= 1, "
                f"got {self.expert_hidden!r}"
            )
        if any(int(h) < 1 for h in self.tower_hidden):
            raise ValueError(
                f"MMoEConfig.tower_hidden widths must be >= 1, got {self.tower_hidden!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MMoEConfig.dropout must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "expert_hidden", tuple(int(h) for h in self.expert_hidden))
        object.__setattr__(self, "tower_hidden", tuple(int(h) for h in self.tower_hidden))


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's architecture (not its weights).

    Args:
        features: Feature specs, in model order.
        tasks: Task specs, in model order.
        arch: Architecture name, a key of :data:`BUILDERS`.
        config: That architecture's config dataclass.
    """

    features: tuple[FeatureSpec, ...]
    tasks: tuple[TaskSpec, ...]
    arch: str
    config: Any


class MultiTaskModel(nn.Module):
    """Embedding -> backbone -> heads; returns logits keyed by task name.

    Args:
        embedding: Raw features -> ``[B, D]``.
        backbone: ``[B, D]`` -> task -> ``[B, d_task]``.
        heads: Task -> ``[B, d_task]`` -> task -> logits ``[B]``.
        spec: What the parts were built from (for checkpoints and validation).

    Example:
        >>> from ranker.features import NumericFeature
        >>> model = build_mmoe([NumericFeature("x")], [TaskSpec("click")])
        >>> model(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 1))["click"].shape
        torch.Size([2])
    """

    def __init__(
        self, embedding: FeatureEmbedding, backbone: Backbone, heads: Heads, spec: ModelSpec
    ) -> None:
        super().__init__()
        if backbone.in_dim != embedding.out_dim:
            raise ValueError(
                f"backbone expects {backbone.in_dim} inputs, embedding gives {embedding.out_dim}"
            )
        self.embedding = embedding
        self.backbone = backbone
        self.heads = heads
        self.spec = spec

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        """The model's task specs."""
        return self.spec.tasks

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """The model's feature specs."""
        return self.spec.features

    def forward(self, categorical: Tensor, numeric: Tensor) -> dict[str, Tensor]:
        """Score one batch.

        Args:
            categorical: ``[B, n_cat]`` int64 ids, categorical features in spec order.
            numeric: ``[B, n_num]`` float32 raw values, numeric features in spec order.

        Returns:
            Task -> logits ``[B]`` (conditional on the parent for ``"after:x"`` tasks).
        """
        x = self.embedding(categorical, numeric)  # [B, D]
        reps = self.backbone(x)  # task -> [B, d_task]
        return self.heads(reps)  # task -> [B]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters all tasks share: embeddings and the backbone's shared part."""
        yield from self.embedding.parameters()
        yield from self.backbone.shared_parameters()


def build_mmoe(
    features: Sequence[FeatureSpec],
    tasks: Sequence[TaskSpec],
    config: MMoEConfig = MMoEConfig(),  # noqa: B008  (frozen, so a shared default is safe)
    seed: int = 0,
) -> MultiTaskModel:
    """Build an MMoE ranker: MLP experts on all features, one gate and tower per task.

    Initialization draws from a private RNG seeded with ``seed``; the caller's
    global torch RNG is left as it was.

    Args:
        features: Feature specs.
        tasks: Task specs (validated: unique names, resolvable sample spaces).
        config: Architecture hyperparameters.
        seed: Seed of the weight initialization.

    Example:
        >>> from ranker.features import CategoricalFeature, NumericFeature
        >>> model = build_mmoe(
        ...     [CategoricalFeature("item", 1000), NumericFeature("price")],
        ...     [TaskSpec("click"), TaskSpec("buy", sample_space="after:click")],
        ...     MMoEConfig(n_experts=2),
        ... )
        >>> [t.name for t in model.tasks]
        ['click', 'buy']
    """
    features = validate_features(features)
    tasks = validate_tasks(tasks)
    if not isinstance(config, MMoEConfig):
        raise ValueError(f"build_mmoe needs an MMoEConfig, got {type(config).__name__}")
    names = [t.name for t in tasks]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embedding = FeatureEmbedding(features)
        experts = [
            MLPExpert(embedding.out_dim, config.expert_hidden, config.dropout)
            for _ in range(config.n_experts)
        ]
        backbone = MMoE(experts, names)
        heads = Towers(backbone.out_dims, config.tower_hidden, config.dropout)
    return MultiTaskModel(embedding, backbone, heads, ModelSpec(features, tasks, "mmoe", config))


Builder = Callable[[Sequence[FeatureSpec], Sequence[TaskSpec], Any], MultiTaskModel]

BUILDERS: dict[str, tuple[type, Builder]] = {
    "mmoe": (MMoEConfig, build_mmoe),
}
"""Architecture name -> (config class, builder); used to rebuild models from checkpoints."""

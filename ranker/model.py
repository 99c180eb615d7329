"""The multi-task model: embedding -> backbone -> heads, and builders for each architecture.

A model is composed of named parts passed in, so a new backbone or head type
is a new part, not a new model class. It carries a :class:`ModelSpec` (feature
specs, task specs, architecture name and config) so that a checkpoint can
rebuild it. The name -> class maps live here, one explicit dict each:
:data:`BUILDERS` (architecture -> config class and builder),
:data:`EXPERT_KINDS` and :data:`HEAD_KINDS` (config strings -> part factories).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ranker.backbones.base import Backbone
from ranker.backbones.cgc import CGC, CGCLevel
from ranker.backbones.mmoe import MMoE
from ranker.backbones.ple import PLE
from ranker.backbones.shared_bottom import SharedBottom
from ranker.configs import (
    CGCConfig,
    MMoEConfig,
    PartsConfig,
    PLEConfig,
    SharedBottomConfig,
)
from ranker.experts.base import Expert, ExpertInput
from ranker.experts.dcn import DCNExpert
from ranker.experts.fields import FieldStack
from ranker.experts.fm import FMExpert
from ranker.experts.mlp import MLPExpert
from ranker.features import FeatureEmbedding, FeatureSpec, validate_features
from ranker.heads.base import Heads, entire_space_probs
from ranker.heads.chain import ChainHeads
from ranker.heads.escm2 import ESCM2Heads
from ranker.heads.esmm import ESMMHeads
from ranker.heads.towers import Towers
from ranker.tasks import TaskSpec, validate_tasks

__all__ = [
    "BUILDERS",
    "EXPERT_KINDS",
    "HEAD_KINDS",
    "CGCConfig",
    "MMoEConfig",
    "ModelSpec",
    "MultiTaskModel",
    "PLEConfig",
    "PartsConfig",
    "SharedBottomConfig",
    "build_cgc",
    "build_mmoe",
    "build_model",
    "build_ple",
    "build_shared_bottom",
]


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
    """Embedding -> (fields) -> backbone -> heads; returns logits keyed by task name.

    Args:
        embedding: Raw features -> flat ``[B, D]``.
        backbone: :class:`ExpertInput` -> task -> ``[B, d_task]``.
        heads: Task -> ``[B, d_task]`` -> task -> logits ``[B]``.
        spec: What the parts were built from (for checkpoints and validation).
        fields: Flat ``[B, D]`` -> field vectors ``[B, F, k]``, for FM experts (None: none).

    Example:
        >>> from ranker.features import NumericFeature
        >>> model = build_mmoe([NumericFeature("x")], [TaskSpec("click")])
        >>> model(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 1))["click"].shape
        torch.Size([2])
    """

    def __init__(
        self,
        embedding: FeatureEmbedding,
        backbone: Backbone,
        heads: Heads,
        spec: ModelSpec,
        fields: FieldStack | None = None,
    ) -> None:
        super().__init__()
        if backbone.in_dim != embedding.out_dim:
            raise ValueError(
                f"backbone expects {backbone.in_dim} inputs, embedding gives {embedding.out_dim}"
            )
        if fields is None and any(getattr(m, "needs_fields", False) for m in backbone.modules()):
            raise ValueError("the backbone has experts that read field vectors; pass fields=")
        if fields is not None and fields.in_dim != embedding.out_dim:
            raise ValueError(
                f"fields expect {fields.in_dim} inputs, embedding gives {embedding.out_dim}"
            )
        self.embedding = embedding
        self.fields = fields
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
            categorical: ``[B, n_cat + sum(L_s)]`` int64 ids, categorical features in spec
                order then each sequence feature's ``L_s`` columns
                (:func:`ranker.data.encode_features`).
            numeric: ``[B, n_num]`` float32 raw values, numeric features in spec order.

        Returns:
            Task -> logits ``[B]`` (conditional on the parent for ``"after:x"`` tasks,
            whatever the head); a :class:`~ranker.heads.HeadOutputs` where the
            head's loss needs more (its ``aux``).
        """
        flat = self.embedding(categorical, numeric)  # [B, D]
        fields = None if self.fields is None else self.fields(flat)  # [B, F, k]
        reps = self.backbone(ExpertInput(flat, fields))  # task -> [B, d_task]
        return self.heads(reps)  # type: ignore[no-any-return]  # task -> [B]

    def losses(
        self, outputs: Mapping[str, Tensor], labels: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Task -> scalar training loss of one batch, as the heads define it.

        Towers give :func:`ranker.losses.task_losses`; entire-space heads (ESMM,
        chain) and ESCM2 give their own. Pass ``outputs`` straight from
        :meth:`forward` (the DR head reads its ``aux``).

        Args:
            outputs: What :meth:`forward` returned for the batch.
            labels: Task -> ``[B]`` float labels.

        Example:
            >>> from ranker.features import NumericFeature
            >>> m = build_mmoe([NumericFeature("x")], [TaskSpec("c")])
            >>> out = m(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 1))
            >>> list(m.losses(out, {"c": torch.ones(2)}))
            ['c']
        """
        return self.heads.losses(outputs, labels, self.tasks)

    def entire_space_probs(self, logits: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Unconditional probabilities ``[B]`` per task (``pCTCVR`` for ``cvr: "after:ctr"``).

        Args:
            logits: Task -> ``[B]`` logits from :meth:`forward`.
        """
        return entire_space_probs(logits, self.tasks)

    def last_shared_parameters(self) -> Iterator[Tensor]:
        """Weights of the last layer all tasks share (the backbone's; GradNorm's ``W``)."""
        return self.backbone.last_shared_parameters()

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters all tasks share: embeddings, field vectors, the backbone's shared part."""
        yield from self.embedding.parameters()
        if self.fields is not None:
            yield from self.fields.parameters()
        yield from self.backbone.shared_parameters()


# ---- parts, by config name -------------------------------------------------------------

ExpertFactory = Callable[[int, PartsConfig], Expert]
"""``(in_dim, config) -> Expert`` whose ``out_dim`` is ``config.expert_hidden[-1]``."""

EXPERT_KINDS: dict[str, ExpertFactory] = {
    "mlp": lambda in_dim, c: MLPExpert(in_dim, c.expert_hidden, c.dropout),
    "fm": lambda in_dim, c: FMExpert(in_dim, c.field_dim, c.expert_hidden[-1]),
    "dcn": lambda in_dim, c: DCNExpert(in_dim, c.cross_layers, c.expert_hidden[-1]),
}
"""``PartsConfig.expert_kinds`` entry -> expert factory."""


def _towers(dims: Mapping[str, int], c: PartsConfig) -> Towers:
    return Towers(dims, c.tower_hidden, c.dropout, c.transfer)


def _escm2_dr(dims: Mapping[str, int], tasks: Sequence[TaskSpec], c: PartsConfig) -> Heads:
    children = {t.name: dims[t.name] for t in tasks if t.parent is not None}
    imputation = Towers(children, c.tower_hidden, c.dropout)
    return ESCM2Heads(_towers(dims, c), tasks, c.cf_weight, imputation)


HeadFactory = Callable[[Mapping[str, int], Sequence[TaskSpec], PartsConfig], Heads]
"""``(task -> representation width, tasks, config) -> Heads``."""

HEAD_KINDS: dict[str, HeadFactory] = {
    "towers": lambda dims, tasks, c: _towers(dims, c),
    "esmm": lambda dims, tasks, c: ESMMHeads(_towers(dims, c), tasks),
    "chain": lambda dims, tasks, c: ChainHeads(_towers(dims, c), tasks),
    "escm2_ips": lambda dims, tasks, c: ESCM2Heads(_towers(dims, c), tasks, c.cf_weight),
    "escm2_dr": _escm2_dr,
}
"""``PartsConfig.head`` -> head factory."""


def _experts(config: PartsConfig, in_dim: int, n: int) -> list[Expert]:
    """``n`` first-level experts, kinds cycling through ``config.expert_kinds``."""
    kinds = config.expert_kinds
    return [EXPERT_KINDS[kinds[i % len(kinds)]](in_dim, config) for i in range(n)]


BackboneFactory = Callable[[int, Sequence[str], Any], Backbone]


def _assemble(
    arch: str,
    features: Sequence[FeatureSpec],
    tasks: Sequence[TaskSpec],
    config: PartsConfig,
    seed: int,
    make_backbone: BackboneFactory,
) -> MultiTaskModel:
    """Embedding, fields (if an expert is FM), backbone, heads; seeded, global RNG untouched."""
    features = validate_features(features)
    tasks = validate_tasks(tasks)
    names = [t.name for t in tasks]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embedding = FeatureEmbedding(features)
        fields = None
        if "fm" in config.expert_kinds:
            # a pooled sequence is one field, like a categorical embedding
            fields = FieldStack(embedding.id_dims, len(embedding.numeric), config.field_dim)
        backbone = make_backbone(embedding.out_dim, names, config)
        heads = HEAD_KINDS[config.head](backbone.out_dims, tasks, config)
    spec = ModelSpec(features, tasks, arch, config)
    return MultiTaskModel(embedding, backbone, heads, spec, fields)


def _check_config(arch: str, config: object, cls: type) -> None:
    if not isinstance(config, cls):
        raise ValueError(
            f"architecture {arch!r} needs a {cls.__name__}, got {type(config).__name__}"
        )


# ---- builders, one per architecture --------------------------------------------------------


def build_mmoe(
    features: Sequence[FeatureSpec],
    tasks: Sequence[TaskSpec],
    config: MMoEConfig = MMoEConfig(),  # noqa: B008  (frozen, so a shared default is safe)
    seed: int = 0,
) -> MultiTaskModel:
    """Build an MMoE ranker: experts on all features, one gate and tower per task.

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
    _check_config("mmoe", config, MMoEConfig)

    def backbone(in_dim: int, names: Sequence[str], c: MMoEConfig) -> Backbone:
        return MMoE(_experts(c, in_dim, c.n_experts), names)

    return _assemble("mmoe", features, tasks, config, seed, backbone)


def build_shared_bottom(
    features: Sequence[FeatureSpec],
    tasks: Sequence[TaskSpec],
    config: SharedBottomConfig = SharedBottomConfig(),  # noqa: B008  (frozen)
    seed: int = 0,
) -> MultiTaskModel:
    """Build a shared-bottom ranker: one expert per ``expert_kinds`` entry, side by side.

    Args:
        features: Feature specs.
        tasks: Task specs.
        config: Architecture hyperparameters.
        seed: Seed of the weight initialization.

    Example:
        >>> from ranker.features import NumericFeature
        >>> m = build_shared_bottom([NumericFeature("x")], [TaskSpec("click")])
        >>> type(m.backbone).__name__
        'SharedBottom'
    """
    _check_config("shared_bottom", config, SharedBottomConfig)

    def backbone(in_dim: int, names: Sequence[str], c: SharedBottomConfig) -> Backbone:
        return SharedBottom(_experts(c, in_dim, len(c.expert_kinds)), names)

    return _assemble("shared_bottom", features, tasks, config, seed, backbone)


def build_cgc(
    features: Sequence[FeatureSpec],
    tasks: Sequence[TaskSpec],
    config: CGCConfig = CGCConfig(),  # noqa: B008  (frozen)
    seed: int = 0,
) -> MultiTaskModel:
    """Build a CGC ranker: per-task and shared experts, a gate per task.

    Args:
        features: Feature specs.
        tasks: Task specs.
        config: Architecture hyperparameters.
        seed: Seed of the weight initialization.

    Example:
        >>> from ranker.features import NumericFeature
        >>> m = build_cgc([NumericFeature("x")], [TaskSpec("a"), TaskSpec("b")])
        >>> sorted(m.backbone.out_dims)
        ['a', 'b']
    """
    _check_config("cgc", config, CGCConfig)

    def backbone(in_dim: int, names: Sequence[str], c: CGCConfig) -> Backbone:
        specific = {t: _experts(c, in_dim, c.n_specific) for t in names}
        return CGC(specific, _experts(c, in_dim, c.n_shared))

    return _assemble("cgc", features, tasks, config, seed, backbone)


def build_ple(
    features: Sequence[FeatureSpec],
    tasks: Sequence[TaskSpec],
    config: PLEConfig = PLEConfig(),  # noqa: B008  (frozen)
    seed: int = 0,
) -> MultiTaskModel:
    """Build a PLE ranker: ``n_levels`` CGC levels, shared gates on the lower ones.

    First-level experts follow ``expert_kinds``; upper levels are MLP experts on
    the level below's outputs.

    Args:
        features: Feature specs.
        tasks: Task specs.
        config: Architecture hyperparameters.
        seed: Seed of the weight initialization.

    Example:
        >>> from ranker.features import NumericFeature
        >>> m = build_ple([NumericFeature("x")], [TaskSpec("a")], PLEConfig(n_levels=3))
        >>> len(m.backbone.levels)
        3
    """
    _check_config("ple", config, PLEConfig)

    def backbone(in_dim: int, names: Sequence[str], c: PLEConfig) -> Backbone:
        width = c.expert_hidden[-1]
        levels: list[CGCLevel] = []
        for i in range(c.n_levels):
            top = i == c.n_levels - 1
            if i == 0:
                specific = {t: _experts(c, in_dim, c.n_specific) for t in names}
                shared = _experts(c, in_dim, c.n_shared)
            else:

                def mlps(n: int) -> list[Expert]:
                    return [MLPExpert(width, c.expert_hidden, c.dropout) for _ in range(n)]

                specific = {t: mlps(c.n_specific) for t in names}
                shared = mlps(c.n_shared)
            levels.append(CGCLevel(specific, shared, shared_gate=not top))
        return PLE(levels)

    return _assemble("ple", features, tasks, config, seed, backbone)


class Builder(Protocol):
    """``(features, tasks, config, seed=0) -> MultiTaskModel``."""

    def __call__(
        self,
        features: Sequence[FeatureSpec],
        tasks: Sequence[TaskSpec],
        config: Any,
        seed: int = 0,
    ) -> MultiTaskModel: ...


BUILDERS: dict[str, tuple[type, Builder]] = {
    "mmoe": (MMoEConfig, build_mmoe),
    "shared_bottom": (SharedBottomConfig, build_shared_bottom),
    "cgc": (CGCConfig, build_cgc),
    "ple": (PLEConfig, build_ple),
}
"""Architecture name -> (config class, builder); used to rebuild models from checkpoints."""


def build_model(
    kind: str,
    features: Sequence[FeatureSpec],
    tasks: Sequence[TaskSpec],
    config: PartsConfig | None = None,
    seed: int = 0,
) -> MultiTaskModel:
    """Build a ranker of architecture ``kind`` (a key of :data:`BUILDERS`).

    Args:
        kind: ``"mmoe"``, ``"shared_bottom"``, ``"cgc"`` or ``"ple"``.
        features: Feature specs.
        tasks: Task specs.
        config: That architecture's config (None: its defaults); its ``head``
            picks the heads and ``expert_kinds`` the experts.
        seed: Seed of the weight initialization.

    Example:
        >>> from ranker.features import NumericFeature
        >>> tasks = [TaskSpec("ctr"), TaskSpec("cvr", "after:ctr")]
        >>> m = build_model("ple", [NumericFeature("x")], tasks, PLEConfig(head="esmm"))
        >>> type(m.heads).__name__
        'ESMMHeads'
    """
    if kind not in BUILDERS:
        raise ValueError(f"unknown architecture {kind!r}; valid: {sorted(BUILDERS)}")
    config_cls, builder = BUILDERS[kind]
    return builder(features, tasks, config_cls() if config is None else config, seed)

"""Architecture configs: one frozen dataclass per backbone kind, sharing the parts' settings.

Every config carries the settings of the parts all backbones are built from
(:class:`PartsConfig`: expert widths and kinds, towers, head) plus its own
counts. Configs hold names and numbers only, so a checkpoint stores them as
JSON and rebuilds the model.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

__all__ = [
    "EXPERT_NAMES",
    "HEAD_NAMES",
    "CGCConfig",
    "MMoEConfig",
    "PLEConfig",
    "PartsConfig",
    "SharedBottomConfig",
]

EXPERT_NAMES = ("mlp", "fm", "dcn")
"""Valid ``expert_kinds`` entries (builders map them to expert classes in ``ranker.model``)."""
HEAD_NAMES = ("towers", "esmm", "chain", "escm2_ips", "escm2_dr")
"""Valid ``head`` values (builders map them to head classes in ``ranker.model``)."""


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _widths(owner: str, name: str, value: tuple[int, ...], allow_empty: bool) -> tuple[int, ...]:
    widths = tuple(value)
    if (not widths and not allow_empty) or any(not _is_int(h) or h < 1 for h in widths):
        need = "widths >= 1" if allow_empty else "non-empty widths >= 1"
        raise ValueError(f"{owner}.{name} must be {need}, got {value!r}")
    return tuple(int(h) for h in widths)


def _count(config: object, name: str, low: int) -> None:
    """Check ``config.<name>`` is an int >= ``low``; store it as a plain int."""
    value = getattr(config, name)
    if not _is_int(value) or value < low:
        raise ValueError(f"{type(config).__name__}.{name} must be an int >= {low}, got {value!r}")
    object.__setattr__(config, name, int(value))


@dataclass(frozen=True, kw_only=True)
class PartsConfig:
    """Settings of the parts every architecture is built from (keyword-only).

    Args:
        expert_hidden: Hidden widths of each MLP expert; the last is every expert's
            output width (FM and DCN experts project to it).
        tower_hidden: Hidden widths of each task tower (may be empty).
        dropout: Dropout probability in MLP experts and towers.
        expert_kinds: Kinds of the first-level experts, cycled over them: expert
            ``i`` of a group is ``expert_kinds[i % len]``; each of ``"mlp"``,
            ``"fm"`` (second-order field interactions), ``"dcn"`` (DCN-v2 cross).
        cross_layers: Cross layers of each DCN expert.
        field_dim: Width of the field vectors FM experts read.
        head: ``"towers"``, ``"esmm"``, ``"chain"``, ``"escm2_ips"`` or ``"escm2_dr"``.
        transfer: ``(source, target)`` task pairs: the target tower also reads the
            source tower's last hidden state, gradient stopped.
        cf_weight: Weight of ESCM2's counterfactual CVR risk (escm2 heads only).

    Example:
        >>> PartsConfig(expert_kinds=("mlp", "dcn"), head="esmm").head
        'esmm'
    """

    expert_hidden: tuple[int, ...] = (128, 64)
    tower_hidden: tuple[int, ...] = (32,)
    dropout: float = 0.0
    expert_kinds: tuple[str, ...] = ("mlp",)
    cross_layers: int = 2
    field_dim: int = 8
    head: str = "towers"
    transfer: tuple[tuple[str, str], ...] = ()
    cf_weight: float = 1.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        hidden = _widths(owner, "expert_hidden", self.expert_hidden, allow_empty=False)
        towers = _widths(owner, "tower_hidden", self.tower_hidden, allow_empty=True)
        object.__setattr__(self, "expert_hidden", hidden)
        object.__setattr__(self, "tower_hidden", towers)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{owner}.dropout must be in [0, 1), got {self.dropout!r}")
        kinds = tuple(self.expert_kinds)
        bad = [k for k in kinds if k not in EXPERT_NAMES]
        if not kinds or bad:
            raise ValueError(
                f"{owner}.expert_kinds must be a non-empty tuple of {list(EXPERT_NAMES)}, "
                f"got {self.expert_kinds!r}"
            )
        object.__setattr__(self, "expert_kinds", kinds)
        _count(self, "cross_layers", 1)
        _count(self, "field_dim", 1)
        if self.head not in HEAD_NAMES:
            raise ValueError(f"{owner}.head must be one of {list(HEAD_NAMES)}, got {self.head!r}")
        pairs = tuple(tuple(p) for p in self.transfer)
        if any(
            len(p) != 2 or p[0] == p[1] or not all(isinstance(n, str) for n in p) for p in pairs
        ):
            raise ValueError(
                f"{owner}.transfer must be (source, target) pairs of two different task "
                f"names, got {self.transfer!r}"
            )
        object.__setattr__(self, "transfer", pairs)
        if not (isinstance(self.cf_weight, int | float) and 0 <= self.cf_weight < float("inf")):
            raise ValueError(
                f"{owner}.cf_weight must be a finite number >= 0, got {self.cf_weight!r}"
            )


@dataclass(frozen=True)
class MMoEConfig(PartsConfig):
    """MMoE: ``n_experts`` experts shared by all tasks, a softmax gate per task.

    Args:
        n_experts: Number of shared experts.
        **parts: The keyword-only :class:`PartsConfig` settings.

    Example:
        >>> MMoEConfig(n_experts=8).expert_hidden
        (128, 64)
    """

    n_experts: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        _count(self, "n_experts", 1)


@dataclass(frozen=True)
class SharedBottomConfig(PartsConfig):
    """Shared-bottom: one expert per entry of ``expert_kinds``, side by side, shared by all.

    Args:
        **parts: The keyword-only :class:`PartsConfig` settings.

    Example:
        >>> SharedBottomConfig(expert_kinds=("mlp", "dcn")).expert_kinds
        ('mlp', 'dcn')
    """


@dataclass(frozen=True)
class CGCConfig(PartsConfig):
    """CGC: per task ``n_specific`` experts of its own, plus ``n_shared`` shared experts.

    Args:
        n_shared: Shared experts (>= 1).
        n_specific: Experts of each task (>= 1).
        **parts: The keyword-only :class:`PartsConfig` settings.

    Example:
        >>> CGCConfig(n_shared=1, n_specific=2).n_specific
        2
    """

    n_shared: int = 2
    n_specific: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        _count(self, "n_shared", 1)
        _count(self, "n_specific", 1)


@dataclass(frozen=True)
class PLEConfig(PartsConfig):
    """PLE: ``n_levels`` stacked CGC levels, shared gates on all but the top.

    ``expert_kinds`` applies to the first level, which reads the features; upper
    levels read vectors (the outputs below), so their experts are MLPs.

    Args:
        n_shared: Shared experts per level (>= 1).
        n_specific: Experts of each task per level (>= 1).
        n_levels: Number of levels (>= 1; 1 is CGC).
        **parts: The keyword-only :class:`PartsConfig` settings.

    Example:
        >>> PLEConfig(n_levels=3).n_levels
        3
    """

    n_shared: int = 2
    n_specific: int = 1
    n_levels: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_shared", "n_specific", "n_levels"):
            _count(self, name, 1)

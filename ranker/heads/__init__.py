"""Heads: per-task representations -> per-task logits, and the losses that train them."""

from __future__ import annotations

from ranker.heads.base import (
    HeadOutputs,
    Heads,
    entire_space_labels,
    entire_space_log_probs,
    entire_space_probs,
)
from ranker.heads.chain import ChainHeads, entire_space_losses
from ranker.heads.escm2 import ESCM2Heads, dr_risk, ips_risk
from ranker.heads.esmm import ESMMHeads
from ranker.heads.towers import Towers

__all__ = [
    "ChainHeads",
    "ESCM2Heads",
    "ESMMHeads",
    "HeadOutputs",
    "Heads",
    "Towers",
    "dr_risk",
    "entire_space_labels",
    "entire_space_log_probs",
    "entire_space_losses",
    "entire_space_probs",
    "ips_risk",
]

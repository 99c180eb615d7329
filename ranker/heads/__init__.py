"""Heads: per-task representations -> per-task logits (independent towers now)."""

from __future__ import annotations

from ranker.heads.base import Heads
from ranker.heads.towers import Towers

__all__ = ["Heads", "Towers"]

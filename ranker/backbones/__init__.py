"""Backbones: shared layers producing one representation per task (MMoE now)."""

from __future__ import annotations

from ranker.backbones.base import Backbone
from ranker.backbones.mmoe import MMoE

__all__ = ["Backbone", "MMoE"]

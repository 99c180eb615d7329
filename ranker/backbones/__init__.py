"""Backbones: shared layers producing one representation per task."""

from __future__ import annotations

from ranker.backbones.base import Backbone
from ranker.backbones.cgc import CGC, CGCLevel
from ranker.backbones.mmoe import MMoE
from ranker.backbones.ple import PLE
from ranker.backbones.shared_bottom import SharedBottom

__all__ = ["CGC", "PLE", "Backbone", "CGCLevel", "MMoE", "SharedBottom"]

"""Experts: sub-networks a backbone mixes (MLP now; FM and DCN-v2 cross later)."""

from __future__ import annotations

from ranker.experts.base import Expert
from ranker.experts.mlp import MLPExpert, make_mlp

__all__ = ["Expert", "MLPExpert", "make_mlp"]

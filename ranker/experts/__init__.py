"""Experts: sub-networks a backbone mixes (MLP, FM, DCN-v2 cross), and their shared input."""

from __future__ import annotations

from ranker.experts.base import Expert, ExpertInput
from ranker.experts.batched import mlp_signature, run_mlp_group
from ranker.experts.dcn import CrossLayer, DCNExpert
from ranker.experts.fields import FieldStack
from ranker.experts.fm import FMExpert, fm_interaction
from ranker.experts.mlp import MLPExpert, make_mlp

__all__ = [
    "CrossLayer",
    "DCNExpert",
    "Expert",
    "ExpertInput",
    "FMExpert",
    "FieldStack",
    "MLPExpert",
    "fm_interaction",
    "make_mlp",
    "mlp_signature",
    "run_mlp_group",
]

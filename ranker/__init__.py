"""Multi-task ranking models (PyTorch): specs, MMoE, training, metrics, scoring, checkpoints.

The ranker takes plain numpy arrays keyed by feature and task name and never
imports ``simulator`` or ``tuner``.

Example:
    >>> import numpy as np
    >>> from ranker import (CategoricalFeature, NumericFeature, RankerData, TaskSpec,
    ...                     TrainConfig, build_mmoe, predict, train)
    >>> model = build_mmoe(
    ...     [CategoricalFeature("item", 100), NumericFeature("price")],
    ...     [TaskSpec("click"), TaskSpec("buy", sample_space="after:click")],
    ... )
    >>> rng = np.random.default_rng(0)
    >>> def rows(n):  # clicks on even items; of those, buys on multiples of 4
    ...     item = rng.integers(0, 100, n)
    ...     return RankerData({"item": item, "price": rng.lognormal(size=n)},
    ...                       {"click": item % 2 == 0, "buy": item % 4 == 0})
    >>> result = train(model, rows(1000), rows(300), TrainConfig(epochs=2), progress=False)
    >>> len(result.history)
    2
    >>> scores = predict(model, {"item": np.arange(3), "price": np.ones(3)})
    >>> sorted(scores)
    ['buy', 'click']
"""

from __future__ import annotations

from ranker.backbones import CGC, PLE, Backbone, CGCLevel, MMoE, SharedBottom
from ranker.balancers import (
    BALANCERS,
    BaseBalancer,
    DWABalancer,
    GradNormBalancer,
    PCGradBalancer,
    PECBalancer,
    StaticBalancer,
    UncertaintyBalancer,
)
from ranker.checkpoint import CheckpointError, load_checkpoint, model_fingerprint, save_checkpoint
from ranker.data import RankerData, encode_features, encode_labels
from ranker.experts import DCNExpert, Expert, ExpertInput, FieldStack, FMExpert, MLPExpert
from ranker.features import (
    CategoricalFeature,
    FeatureEmbedding,
    FeatureSpec,
    NumericFeature,
    SequenceFeature,
)
from ranker.heads import (
    ChainHeads,
    ESCM2Heads,
    ESMMHeads,
    HeadOutputs,
    Heads,
    Towers,
    entire_space_probs,
)
from ranker.losses import task_losses
from ranker.metrics import TaskMetrics, auc, evaluate
from ranker.model import (
    BUILDERS,
    CGCConfig,
    MMoEConfig,
    ModelSpec,
    MultiTaskModel,
    PartsConfig,
    PLEConfig,
    SharedBottomConfig,
    build_cgc,
    build_mmoe,
    build_model,
    build_ple,
    build_shared_bottom,
)
from ranker.score import predict
from ranker.tasks import TaskSpec
from ranker.train import TrainConfig, TrainResult, train

__all__ = [
    "BALANCERS",
    "BUILDERS",
    "Backbone",
    "BaseBalancer",
    "CGC",
    "CGCConfig",
    "CGCLevel",
    "CategoricalFeature",
    "ChainHeads",
    "CheckpointError",
    "DCNExpert",
    "ESCM2Heads",
    "ESMMHeads",
    "DWABalancer",
    "Expert",
    "ExpertInput",
    "FMExpert",
    "FeatureEmbedding",
    "FeatureSpec",
    "FieldStack",
    "HeadOutputs",
    "GradNormBalancer",
    "Heads",
    "MLPExpert",
    "MMoE",
    "MMoEConfig",
    "ModelSpec",
    "MultiTaskModel",
    "NumericFeature",
    "PLE",
    "PLEConfig",
    "PartsConfig",
    "PCGradBalancer",
    "PECBalancer",
    "RankerData",
    "SequenceFeature",
    "SharedBottom",
    "SharedBottomConfig",
    "StaticBalancer",
    "TaskMetrics",
    "TaskSpec",
    "Towers",
    "TrainConfig",
    "TrainResult",
    "UncertaintyBalancer",
    "auc",
    "build_cgc",
    "build_mmoe",
    "build_model",
    "build_ple",
    "build_shared_bottom",
    "encode_features",
    "encode_labels",
    "entire_space_probs",
    "evaluate",
    "load_checkpoint",
    "model_fingerprint",
    "predict",
    "save_checkpoint",
    "task_losses",
    "train",
]

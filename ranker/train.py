"""Training: Adam on masked per-task cross-entropy, early stopping on validation loss.

How the task losses make one step is the balancer's business
(:mod:`ranker.balancers`); the trainer hands it the batch losses and the
model's shared parameters each step, and the epoch's mean task losses after
each epoch.

Batches are slices of tensors built once (no DataLoader), shuffled each epoch
with a seeded ``torch.Generator``; with the same seed, data and thread count
two runs give identical weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ranker.balancers.base import BaseBalancer
from ranker.balancers.static import StaticBalancer, check_loss_weights
from ranker.data import RankerData, encode_features, encode_labels
from ranker.heads.base import HeadOutputs
from ranker.metrics import TaskMetrics, evaluate
from ranker.model import MultiTaskModel
from ranker.progress import progress_bar, progress_line
from ranker.score import predict_logits

__all__ = ["PRECISIONS", "TrainConfig", "TrainResult", "train"]

if TYPE_CHECKING:
    from tqdm import tqdm

PRECISIONS = ("fp32", "bf16")
"""Valid :attr:`TrainConfig.precision` values."""


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters.

    Args:
        epochs: Maximum number of passes over the training rows.
        batch_size: Rows per optimizer step.
        lr: Adam learning rate.
        weight_decay: Adam L2 penalty.
        patience: Stop after this many epochs without a lower validation loss.
        seed: Seed of shuffling and dropout.
        loss_weights: Static weight >= 0 per task (missing tasks and None: 1).
        precision: ``"fp32"``, or ``"bf16"``: mixed precision, the training forward
            pass and losses under ``torch.autocast`` with bfloat16 (matrix products
            in bf16; weights, gradients and Adam's state stay float32; validation
            and scoring run in float32). On CPUs with AVX512-BF16 or AMX the
            expert matmuls, most of a step, run several times faster.

    Example:
        >>> TrainConfig(epochs=3, loss_weights={"click": 1.0, "buy": 4.0}).batch_size
        1024
    """

    epochs: int = 5
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-6
    patience: int = 2
    seed: int = 0
    loss_weights: Mapping[str, float] | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("batch_size", 1), ("patience", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"TrainConfig.{name} must be an int >= {low}, got {value!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"TrainConfig.{name} must be a finite number > 0, got {value!r}")
        if self.loss_weights is not None:
            check_loss_weights(self.loss_weights, list(self.loss_weights))
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"TrainConfig.precision must be one of {list(PRECISIONS)}, got {self.precision!r}"
            )


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Args:
        model: The trained model, holding the weights of the best epoch.
        history: One dict per epoch run: ``epoch`` (from 1), ``train_loss``,
            ``valid_loss`` (both the balancer's fixed ``validation_loss``, for the
            static balancer its weighted sum), ``train_loss/<task>``,
            ``valid_loss/<task>``, ``loss_weight/<task>`` (the balancer's weights at
            the end of the epoch), ``seconds``, ``rows_per_s`` (wall clock of the
            epoch's training pass) and ``rows_per_cpu_s`` (per second of this
            process's CPU time, steadier than wall clock on a shared machine).
        best_epoch: Epoch (from 1) with the lowest validation loss; 0 if no epoch had a
            finite one (the model then keeps its weights from before training).
        valid_metrics: Task -> metrics of the best model on the validation rows.
    """

    model: MultiTaskModel
    history: list[dict[str, float]]
    best_epoch: int
    valid_metrics: dict[str, TaskMetrics]


def _as_float32(outputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Logits (and a :class:`HeadOutputs`' ``aux``) cast to float32, keeping the type."""
    logits = {t: z.float() for t, z in outputs.items()}
    if isinstance(outputs, HeadOutputs):
        return HeadOutputs(logits, {k: v.float() for k, v in outputs.aux.items()})
    return logits


def _validation_losses(
    model: MultiTaskModel, cat: Tensor, num: Tensor, labels: dict[str, Tensor], batch_size: int
) -> dict[str, Tensor]:
    logits = predict_logits(model, cat, num, max(batch_size, 8192))
    return model.losses(logits, labels)


def _balancer_of(
    config: TrainConfig, balancer: BaseBalancer | None, task_names: list[str]
) -> BaseBalancer:
    """The balancer given, or the static one of ``config.loss_weights``; never both."""
    weights = check_loss_weights(config.loss_weights, task_names)
    if balancer is None:
        balancer = StaticBalancer(weights)
    elif config.loss_weights is not None:
        raise ValueError("pass either TrainConfig.loss_weights or a balancer, not both")
    unknown = [t for t in balancer.tasks if t not in task_names]
    if unknown:
        raise ValueError(
            f"balancer names task(s) {unknown} the model does not have; model tasks: {task_names}"
        )
    return balancer


def _train_epoch(
    model: MultiTaskModel,
    balancer: BaseBalancer,
    optimizer: torch.optim.Optimizer,
    shared: list[Tensor],
    data: tuple[Tensor, Tensor, dict[str, Tensor]],
    perm: Tensor,
    config: TrainConfig,
    bar: tqdm[int],
) -> dict[str, float]:
    """One pass over the rows in the order ``perm``; the row-weighted sums of the batch
    losses: ``"total"`` (the balancer's validation loss) and one per task.

    Args:
        data: ``cat [n, C]``, ``num [n, D]`` and task -> ``[n]`` labels.
        perm: ``[n]`` the epoch's row order.
        bar: The progress bar over the batch starts (closed here).
    """
    cat, num, labels = data
    n = cat.shape[0]
    e_cat, e_num = cat[perm], num[perm]  # one gather per epoch, then slices
    e_labels = {t: y[perm] for t, y in labels.items()}
    sums = {t: 0.0 for t in ["total", *labels]}
    mixed = config.precision == "bf16"
    device = next(model.parameters()).device.type
    for i, lo in enumerate(bar):
        hi = lo + config.batch_size
        with torch.autocast(device, torch.bfloat16, enabled=mixed):
            logits = model(e_cat[lo:hi], e_num[lo:hi])  # task -> [b]
        if mixed:  # losses in float32: log(1 - p) of bf16 logits loses the small p
            logits = _as_float32(logits)
        # the heads own their loss (towers: per-task BCE; ESMM/ESCM2: entire space)
        losses = model.losses(logits, {t: y[lo:hi] for t, y in e_labels.items()})
        optimizer.zero_grad(set_to_none=True)
        balancer.backward(losses, shared)
        optimizer.step()
        rows = min(hi, n) - lo
        detached = {t: loss.detach() for t, loss in losses.items()}
        total = float(balancer.validation_loss(detached))
        sums["total"] += total * rows
        for t, loss in detached.items():
            sums[t] += float(loss) * rows
        if not bar.disable and i % 20 == 0:
            bar.set_postfix(loss=f"{total:.4f}")
    bar.close()
    return sums


def train(
    model: MultiTaskModel,
    train_data: RankerData,
    valid_data: RankerData,
    config: TrainConfig,
    progress: bool = True,
    *,
    balancer: BaseBalancer | None = None,
) -> TrainResult:
    """Train a multi-task ranker in place, keeping the weights of the best validation epoch.

    Numeric standardization statistics are fitted on ``train_data`` unless the
    model already has them (a fine-tuned model keeps its statistics).

    Args:
        model: Model to train (modified in place and returned in the result).
        train_data: Training rows with a label for every task.
        valid_data: Validation rows, for early stopping and the final metrics.
        config: Training hyperparameters.
        progress: Show a progress bar per epoch (on a terminal) and a line per epoch, on
            stderr.
        balancer: How task losses make a training step (any of
            :data:`ranker.balancers.BALANCERS`, built for the model's tasks; its
            learned weights are optimized with the model and left as they were at the
            end of training). Default: static ``config.loss_weights``; passing both
            is an error.

    Returns:
        The trained model, per-epoch history, best epoch and validation metrics.

    Example:
        >>> import numpy as np
        >>> from ranker import CategoricalFeature, TaskSpec, build_mmoe
        >>> rng = np.random.default_rng(0)
        >>> def rows(n):  # clicks on even items
        ...     item = rng.integers(0, 50, n)
        ...     return RankerData({"item": item}, {"click": item % 2 == 0})
        >>> model = build_mmoe([CategoricalFeature("item", 50)], [TaskSpec("click")])
        >>> result = train(model, rows(500), rows(200), TrainConfig(epochs=2, batch_size=100),
        ...                progress=False)
        >>> result.best_epoch, result.valid_metrics["click"].auc > 0.9
        (2, True)
    """
    task_names = [t.name for t in model.tasks]
    balancer = _balancer_of(config, balancer, task_names)
    cat, num = encode_features(train_data.features, model.features)
    labels = encode_labels(train_data.labels, model.tasks)
    v_cat, v_num = encode_features(valid_data.features, model.features)
    v_labels = encode_labels(valid_data.labels, model.tasks)
    n = cat.shape[0]
    if n == 0:
        raise ValueError("train_data has no rows")
    if v_cat.shape[0] == 0:
        raise ValueError("valid_data has no rows; early stopping needs validation rows")
    if not bool(model.embedding.numeric_fitted):
        model.embedding.fit_numeric(num)

    # in a fixed order, for the balancers that work on gradients (PCGrad, GradNorm, PEC)
    # GradNorm (by default) measures the last shared layer only
    scope = balancer.gradient_scope
    if scope not in ("all", "last"):
        raise ValueError(f"balancer gradient_scope {scope!r} unknown; valid: ['all', 'last']")
    source = model.last_shared_parameters() if scope == "last" else model.shared_parameters()
    shared = [p for p in source if p.requires_grad]
    params = list(model.parameters()) + list(balancer.parameters())
    # fused: one kernel over all parameters; ~10x faster steps than the per-tensor loop on CPU,
    # which matters here because dense embedding tables make most of the parameters.
    optimizer = torch.optim.Adam(
        params, lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # dropout
        for epoch in range(1, config.epochs + 1):
            start_time, start_cpu = time.perf_counter(), time.process_time()
            model.train()
            sums = _train_epoch(
                model, balancer, optimizer, shared, (cat, num, labels),
                torch.randperm(n, generator=gen), config,
                progress_bar(range(0, n, config.batch_size),
                             desc=f"epoch {epoch}/{config.epochs}", enabled=progress,
                             leave=False, unit="batch"),
            )
            seconds = time.perf_counter() - start_time
            cpu_seconds = max(time.process_time() - start_cpu, 1e-9)
            weights_used = balancer.current_weights()
            balancer.on_epoch_end({t: sums[t] / n for t in task_names})
            with torch.no_grad():
                v_losses = _validation_losses(model, v_cat, v_num, v_labels, config.batch_size)
                v_total = float(balancer.validation_loss(v_losses))
            record = {
                "epoch": float(epoch),
                "train_loss": sums["total"] / n,
                "valid_loss": v_total,
            }
            record.update({f"train_loss/{t}": sums[t] / n for t in task_names})
            record.update({f"valid_loss/{t}": float(v) for t, v in v_losses.items()})
            record.update({f"loss_weight/{t}": w for t, w in weights_used.items()})
            record.update(
                {"seconds": seconds, "rows_per_s": n / seconds, "rows_per_cpu_s": n / cpu_seconds}
            )
            history.append(record)
            if progress:
                progress_line(
                    f"epoch {epoch}: train_loss {record['train_loss']:.5f} "
                    f"valid_loss {v_total:.5f} ({n / seconds:,.0f} rows/s)"
                )
            if v_total < best_loss:
                best_loss, best_epoch = v_total, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        valid_metrics=evaluate(model, valid_data),
    )

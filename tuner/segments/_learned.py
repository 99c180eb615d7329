"""A learned weight model ``w(x) -> positive weights``, trained on a smooth replay.

The model starts at the global pick (its last layer is zero, so ``w(x) = w_global`` for
every ``x``) and moves only where the log pays for it: it maximises a differentiable
surrogate of the SNIPS estimate of the objective on a training part of the search split,
and keeps the epoch whose surrogate on a validation part was best (early stopping). The
start itself is not a candidate: the global pick was chosen on the whole search split,
validation part included, so its validation value carries that choice's optimism (on a
2,000,000-request marketplace log it stood above every trained epoch's, whose true values
were up to 0.17% above it). Whether the model beats the global pick is the held-out
guard's question, on requests neither saw.

The surrogate replaces the top-``K`` slate by soft ranks: with fused scores ``f`` of a
request, candidate ``n``'s rank is ``rho_n = sum_{m != n} sigmoid((f_m - f_n) / (tau s))``
(``s`` the standard deviation of the request's fused scores)
and its exposure ``e_n = sum_k examination[k] * max(0, 1 - |rho_n - k|)`` (exact as
``tau -> 0``); then ``V = E * sum w y / sum w x`` with ``w = e / e_0`` over shown
candidates, ``x`` the logged slot's examination and ``E`` the mean total exposure, as
:class:`simulator.estimators.SNIPS`. Torch is imported here only.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LearnedWeights", "LogArrays", "WeightModelConfig", "auto_batch", "surrogate",
           "train_weight_model", "weights_from_json"]


@dataclass(frozen=True)
class WeightModelConfig:
    """Hyperparameters of the weight model and its training.

    Args:
        hidden: width of the one hidden layer.
        epochs: most epochs of training (one Adam step each with a full batch); the kept
            model has at least one (0: the start itself, untrained).
        lr: Adam's learning rate.
        tau: soft-rank temperature, in units of the standard deviation of a
            request's fused scores (so the surrogate, like the order, ignores a
            common scale of the weights).
        patience: epochs without a better validation surrogate before stopping.
        val_fraction: share of the search split's requests held for early stopping.
        seed: seed of the initialisation and the train/validation cut.
        batch_requests: requests an Adam step reads (an epoch is then one pass over the
            training requests in seeded random batches); None: :func:`auto_batch` (full
            batch up to ``2**24`` soft-rank entries, the 20,000-request logs it was
            measured on). The validation surrogate is summed in chunks of the same size.
    """

    hidden: int = 16
    epochs: int = 300
    lr: float = 0.02
    tau: float = 0.1
    patience: int = 30
    val_fraction: float = 0.25
    seed: int = 0
    batch_requests: int | None = None

    def __post_init__(self) -> None:
        for name in ("hidden", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"WeightModelConfig.{name} must be >= 1")
        if int(self.epochs) < 0:
            raise ValueError("WeightModelConfig.epochs must be >= 0 (0: the start, untrained)")
        if self.batch_requests is not None and int(self.batch_requests) < 1:
            raise ValueError("WeightModelConfig.batch_requests must be >= 1 (or None: "
                             f"chosen by the log's size), got {self.batch_requests}")
        if not (self.lr > 0 and self.tau > 0 and 0 < self.val_fraction < 1):
            raise ValueError("WeightModelConfig needs lr > 0, tau > 0, 0 < val_fraction < 1")


@dataclass(frozen=True)
class LogArrays:
    """What the surrogate reads of a split, as float32 arrays.

    Args:
        transformed: ``[R, N, S]`` the fusion's transform of the scores (e.g. log p).
        reward: ``[R, N]`` observed objective labels ``y @ objective`` (0 where not shown).
        shown: ``[R, N]`` 1 where shown.
        logging_exposure: ``[R, N]`` ``e_0``.
        slot_examination: ``[R, N]`` examination of the logged slot (0 where not shown).
        examination: ``[K]``.
        features: ``[R, F]`` the model's input.
    """

    transformed: np.ndarray
    reward: np.ndarray
    shown: np.ndarray
    logging_exposure: np.ndarray
    slot_examination: np.ndarray
    examination: np.ndarray
    features: np.ndarray

    def take(self, idx: np.ndarray) -> LogArrays:
        return LogArrays(self.transformed[idx], self.reward[idx], self.shown[idx],
                         self.logging_exposure[idx], self.slot_examination[idx],
                         self.examination, self.features[idx])


def _model(n_features: int, base: np.ndarray, mean: np.ndarray, std: np.ndarray,
           hidden: int, pinned: int | None) -> Any:
    import torch
    from torch import nn

    class WeightModel(nn.Module):
        """``w(x) = exp(log_w0 + head(tanh(body((x - mean) / std))))``, scaled so the pinned
        weight is ``w0[pinned]``; ``[B, F] -> [B, S]``."""

        mean: torch.Tensor
        std: torch.Tensor
        log_w0: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
            self.register_buffer("log_w0", torch.log(torch.tensor(
                np.maximum(base, 1e-3), dtype=torch.float32)))
            self.body = nn.Linear(n_features, hidden)
            self.head = nn.Linear(hidden, len(base))
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
            self.pinned = -1 if pinned is None else int(pinned)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = torch.tanh(self.body((x - self.mean) / self.std))
            log_w = self.log_w0 + self.head(z)
            if self.pinned >= 0:  # the order ignores a common scale: hold the pinned one
                log_w = log_w - log_w[:, self.pinned:self.pinned + 1] + self.log_w0[
                    self.pinned]
            return torch.exp(log_w)

    return WeightModel()


def _surrogate_sums(model: Any, data: LogArrays, tau: float) -> tuple[Any, Any, Any]:
    """The smooth SNIPS estimate's three sums on ``data``: total exposure, importance-
    weighted reward and importance-weighted examination (tensors)."""
    import torch

    t = torch.from_numpy(data.transformed)
    w = model(torch.from_numpy(data.features))  # [R, S]
    fused = (t * w[:, None, :]).sum(dim=-1)  # [R, N]
    # in units of the request's spread: the order ignores a common scale, so must the
    # surrogate, or it pays the model for inflating its weights (sharper soft ranks)
    spread = fused.std(dim=-1, keepdim=True).clamp_min(1e-6)[:, :, None]  # [R, 1, 1]
    diff = (fused[:, None, :] - fused[:, :, None]) / (tau * spread)  # [R, n, m]: f_m - f_n
    rank = torch.sigmoid(diff).sum(dim=-1) - 0.5  # minus the m == n term
    k = torch.arange(len(data.examination), dtype=torch.float32)
    kernel = torch.clamp(1.0 - (rank[..., None] - k).abs(), min=0.0)  # [R, N, K]
    exposure = kernel @ torch.from_numpy(data.examination.astype(np.float32))  # [R, N]
    iw = exposure * torch.from_numpy(data.shown) / torch.from_numpy(
        np.where(data.shown > 0, data.logging_exposure, 1.0).astype(np.float32))
    num = (iw * torch.from_numpy(data.reward)).sum()
    den = (iw * torch.from_numpy(data.slot_examination)).sum()
    return exposure.sum(dim=-1).sum(), num, den


def surrogate(model: Any, data: LogArrays, tau: float, chunk: int | None = None) -> Any:
    """The smooth SNIPS estimate of the objective of ``model`` on ``data`` (a tensor).

    Args:
        chunk: requests a pass holds at once (their ``[chunk, N, N]`` soft ranks); None:
            all of them. The sums are added over chunks, so the value is the same up to
            float32 summation.
    """
    r = data.reward.shape[0]
    step = r if chunk is None else max(1, int(chunk))
    total = num = den = 0.0
    for a in range(0, r, step):
        part = data if step >= r else data.take(np.arange(a, min(r, a + step)))
        e, n, d = _surrogate_sums(model, part, tau)
        total, num, den = total + e, num + n, den + d
    return total / r * num / den


def auto_batch(n_requests: int, n_candidates: int) -> int | None:
    """The mini-batch (requests) of :func:`train_weight_model` when the config sets none:
    None (full batch) while the split's soft ranks ``[R, N, N]`` hold at most
    :data:`FULL_BATCH_ENTRIES` entries, else about :data:`BATCH_ENTRIES` entries a batch."""
    if n_requests * n_candidates ** 2 <= FULL_BATCH_ENTRIES:
        return None
    return max(256, BATCH_ENTRIES // max(1, n_candidates ** 2))


FULL_BATCH_ENTRIES = 2 ** 24  # 20,000 requests x 20 candidates: 8M entries, full batch
BATCH_ENTRIES = 2 ** 22  # ~10,000 requests of 20 candidates a step


@dataclass
class LearnedWeights:
    """A trained weight model, with its inputs and its training record.

    Args:
        model: the torch module ``[B, F] -> [B, S]``.
        features: input feature names, the order of its columns.
        tasks: the weight order.
        history: ``(epoch, mean train surrogate of its steps, validation surrogate after
            it)`` per epoch; the first row, epoch 0, is the start (train NaN).
        best_epoch: the epoch kept (>= 1: the epochs of training of the kept model).
    """

    model: Any
    features: tuple[str, ...]
    tasks: tuple[str, ...]
    history: list[tuple[int, float, float]]
    best_epoch: int

    @property
    def epochs_run(self) -> int:
        """The epochs trained (the history less its start row)."""
        return len(self.history) - 1

    def weights(self, x: np.ndarray) -> np.ndarray:
        """``[R, S]`` the weights of requests with features ``x`` ``[R, F]``."""
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(np.asarray(x, np.float32))).double().numpy()

    def spec(self) -> dict[str, Any]:
        """Every parameter and the formula, as JSON (what a server without torch reads)."""
        m = self.model
        return {"format": "fusiontune-weight-model", "version": "1.0",
                "features": list(self.features), "tasks": list(self.tasks),
                "formula": "w = exp(log_w0 + head_w @ tanh(body_w @ ((x - mean) / std) + "
                           "body_b) + head_b), then log w shifted so w[pinned] = w0[pinned]",
                "pinned": None if m.pinned < 0 else self.tasks[m.pinned],
                **{name: np.asarray(v.detach()).tolist() for name, v in (
                    ("mean", m.mean), ("std", m.std), ("log_w0", m.log_w0),
                    ("body_w", m.body.weight), ("body_b", m.body.bias),
                    ("head_w", m.head.weight), ("head_b", m.head.bias))}}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LearnedWeights:
        """The model :meth:`spec` describes (its parameters exactly; no training record).

        Raises:
            ValueError: the spec is not a weight model's, or its arrays disagree.
        """
        import torch

        if spec.get("format") != "fusiontune-weight-model":
            raise ValueError("not a fusiontune weight model (format "
                             f"{spec.get('format')!r}, expected 'fusiontune-weight-model')")
        a = {k: np.asarray(spec[k], dtype=np.float32) for k in _PARAMS}
        tasks, features = tuple(spec["tasks"]), tuple(spec["features"])
        pinned = None if spec["pinned"] is None else tasks.index(spec["pinned"])
        model = _model(len(features), np.exp(a["log_w0"]), a["mean"], a["std"],
                       a["body_w"].shape[0], pinned)
        try:
            with torch.no_grad():
                for name, target in (("log_w0", model.log_w0), ("body_w", model.body.weight),
                                     ("body_b", model.body.bias),
                                     ("head_w", model.head.weight),
                                     ("head_b", model.head.bias)):
                    target.copy_(torch.from_numpy(a[name]))
        except RuntimeError as err:
            raise ValueError(f"weight model arrays disagree: {err}") from None
        model.eval()
        return cls(model, features, tasks, [], -1)

    def export(self, folder: str | Path, extra: Mapping[str, Any] | None = None
               ) -> tuple[Path, Path]:
        """Write ``weight_model.pt`` (TorchScript) and ``weight_model.json`` (every parameter,
        for a server without torch, and ``extra`` keys) into ``folder``."""
        import torch

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        # traced (the class annotations are strings under __future__ annotations, which
        # torch.jit.script cannot read); the forward has no data-dependent branch
        example = self.model.mean[None].repeat(2, 1)
        with warnings.catch_warnings():  # torch 2.13 marks jit deprecated; servers read it
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.trace(self.model, example)
        pt = out / "weight_model.pt"
        scripted.save(str(pt))
        js = out / "weight_model.json"
        js.write_text(json.dumps({**self.spec(), **(extra or {})}, indent=1) + "\n")
        return pt, js


_PARAMS = ("mean", "std", "log_w0", "body_w", "body_b", "head_w", "head_b")


def weights_from_json(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """``[R, S]`` the weights the JSON export gives for features ``x`` ``[R, F]`` (numpy)."""
    a = {k: np.asarray(spec[k], dtype=np.float64) for k in _PARAMS}
    z = np.tanh(((np.asarray(x, float) - a["mean"]) / a["std"]) @ a["body_w"].T + a["body_b"])
    log_w = a["log_w0"] + z @ a["head_w"].T + a["head_b"]
    if spec["pinned"] is not None:
        p = spec["tasks"].index(spec["pinned"])
        log_w = log_w - log_w[:, p:p + 1] + a["log_w0"][p]
    return np.exp(log_w)


def train_weight_model(data: LogArrays, base: np.ndarray, features: tuple[str, ...],
                       tasks: tuple[str, ...], config: WeightModelConfig = WeightModelConfig(),
                       pinned: int | None = 0,
                       progress: Callable[[int, float, float], None] | None = None
                       ) -> LearnedWeights:
    """Train ``w(x)`` from ``base`` (the global pick) on the search split ``data``.

    Args:
        data: the search split's arrays; a seeded ``val_fraction`` of its requests is
            held for early stopping.
        base: ``[S]`` the global pick, the model's start.
        features: the names of ``data.features``' columns.
        tasks: the weight order.
        config: hyperparameters.
        pinned: the weight held fixed (the order ignores a common scale); None: none.
        progress: called with ``(epoch, train, validation)`` surrogates every epoch.
    """
    import torch

    torch.manual_seed(config.seed)
    r = data.reward.shape[0]
    perm = np.random.default_rng([config.seed, 3]).permutation(r)
    n_val = max(1, int(round(config.val_fraction * r)))
    val, train = data.take(np.sort(perm[:n_val])), data.take(np.sort(perm[n_val:]))
    mean = train.features.mean(axis=0)
    std = np.maximum(train.features.std(axis=0), 1e-6)
    model = _model(data.features.shape[1], np.asarray(base, float), mean, std,
                   config.hidden, pinned)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n_train, n_cand = train.reward.shape
    batch = (config.batch_requests if config.batch_requests is not None
             else auto_batch(n_train, n_cand))
    order = np.random.default_rng([config.seed, 5])
    with torch.no_grad():
        start = float(surrogate(model, val, config.tau, batch))
    # the start (the global pick) is recorded, not a candidate: it was chosen on the whole
    # search split, validation part included, so its validation value is optimistic
    history = [(0, float("nan"), start)]
    best_val, best_epoch = -np.inf, 0
    best_state = {k: t.clone() for k, t in model.state_dict().items()}  # epochs=0 only
    for epoch in range(1, config.epochs + 1):
        batches: list[np.ndarray | None]
        if batch is None or batch >= n_train:
            batches = [None]
        else:
            perm = order.permutation(n_train)
            batches = [np.sort(perm[a:a + batch]) for a in range(0, n_train, batch)]
        seen = 0.0
        for idx in batches:
            part = train if idx is None else train.take(idx)
            opt.zero_grad()
            loss = -surrogate(model, part, config.tau)
            loss.backward()
            opt.step()
            seen += -float(loss.detach()) * part.reward.shape[0]
        train_value = seen / n_train  # the epoch's mean batch surrogate
        with torch.no_grad():
            v = float(surrogate(model, val, config.tau, batch))
        history.append((epoch, train_value, v))
        if progress is not None:
            progress(epoch, train_value, v)
        if v > best_val:
            best_val, best_epoch = v, epoch
            best_state = {k: t.clone() for k, t in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return LearnedWeights(model, features, tasks, history, best_epoch)

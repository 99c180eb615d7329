"""GradNorm (Chen et al., ICML 2018): learn loss weights that balance gradient norms.

With ``G_k = ||grad_W w_k L_k|| = w_k ||grad_W L_k||`` on the shared
parameters ``W``, ``r_k = (L_k / L_k(0)) / mean_i (L_i / L_i(0))`` each task's
relative inverse training rate and ``G_bar = mean_k G_k``, the weights ``w``
take a gradient step on

    ``L_grad = sum_k | G_k - G_bar * r_k ** alpha |``

with the target ``G_bar * r_k ** alpha`` held constant, and are renormalized
to sum to ``T`` (the number of tasks). ``alpha`` is the asymmetry: 0 pulls
every weighted gradient norm to the same value, larger values favour the
tasks that train slowest. The model itself gets the gradient of
``sum_k w_k L_k``.

Since only ``w`` is differentiated through ``L_grad`` and ``G_k`` is linear
in ``w_k``, no double backward is needed. As in the paper, ``W`` is by default
the last shared layer's weights (``layer="last"``: the trainer hands the
balancer ``model.last_shared_parameters()``, e.g. the output layers of MMoE's
experts or of PLE's top-level shared experts), which is cheaper than and a
proxy for the whole shared network; ``layer="all"`` measures every shared
parameter (embeddings included) instead. The model's own gradient is always
that of ``sum_k w_k L_k`` over all parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ranker.balancers._grads import task_gradients
from ranker.balancers.base import BaseBalancer, check_tasks, require_shared

__all__ = ["LAYERS", "GradNormBalancer"]

LAYERS = ("last", "all")
"""Valid ``GradNormBalancer(layer=...)``: the last shared layer's weights, or all shared."""

_EPS = 1e-8


class GradNormBalancer(BaseBalancer):
    """Learned weights ``w_k`` (sum ``T``) that even out the weighted gradient norms.

    ``T + 1`` backward passes per step. ``w`` is a parameter whose gradient
    (of ``L_grad``) this balancer sets; the trainer's optimizer steps it with
    the model, and the next :meth:`backward` renormalizes it. The first step's
    losses are ``L_k(0)``.

    Args:
        tasks: Task names, in the order of :attr:`loss_weights`.
        alpha: Asymmetry ``>= 0`` (the paper uses 0.12 to 3; 1.5 is common).
        layer: ``"last"`` (the paper's choice): gradient norms on the last shared
            layer's weights; ``"all"``: on every shared parameter.

    Example:
        >>> b = GradNormBalancer(["a", "b"], alpha=1.5)
        >>> b.current_weights()
        {'a': 1.0, 'b': 1.0}
    """

    initial_losses: Tensor  # [T] L_k(0)
    started: Tensor  # [] bool

    def __init__(self, tasks: Sequence[str], alpha: float = 1.5, layer: str = "last") -> None:
        super().__init__()
        self.tasks = check_tasks(tasks, "GradNormBalancer")
        if not isinstance(alpha, int | float) or not 0 <= alpha < math.inf:
            raise ValueError(f"GradNormBalancer alpha must be a finite number >= 0, got {alpha!r}")
        if layer not in LAYERS:
            raise ValueError(
                f"GradNormBalancer layer must be one of {list(LAYERS)}, got {layer!r}"
            )
        self.alpha = float(alpha)
        self.layer = layer
        self.gradient_scope = layer
        self.loss_weights = nn.Parameter(torch.ones(len(self.tasks)))  # [T]
        self.register_buffer("initial_losses", torch.zeros(len(self.tasks)))  # [T]
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))
        self.last_grad_norms: Tensor | None = None  # [T] G_k of the last step, for tests/logs

    def _normalized(self) -> Tensor:
        """Clamp the weights positive and rescale them to sum to ``T``, in place; ``[T]``."""
        with torch.no_grad():
            w = self.loss_weights
            w.clamp_(min=_EPS)
            w.mul_(len(self.tasks) / w.sum())
        return self.loss_weights

    def combine(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``sum_k w_k L_k`` with the current weights (constants here)."""
        return (self._normalized().detach() * self._stack(losses)).sum()

    def current_weights(self) -> dict[str, float]:
        """Task -> ``w_k`` (they sum to ``T``)."""
        w = self._normalized().detach()
        return {t: float(v) for t, v in zip(self.tasks, w, strict=True)}

    def backward(self, losses: Mapping[str, Tensor], shared: Sequence[Tensor] = ()) -> Tensor:
        """Model gradients of ``sum_k w_k L_k``; weight gradients of ``L_grad``."""
        params = require_shared(shared, "GradNormBalancer")
        w = self._normalized()
        stacked = self._stack(losses)  # [T]
        raw = stacked.detach()
        if not bool(self.started):
            self.initial_losses.copy_(raw)
            self.started.fill_(True)
        norms = task_gradients(stacked, params).norm(dim=1)  # [T] ||grad_W L_k||
        total = (w.detach() * stacked).sum()
        total.backward()

        grad_norms = w * norms  # [T] G_k, differentiable in w only
        rates = raw / self.initial_losses.clamp(min=_EPS)  # [T] L_k / L_k(0)
        relative = rates / rates.mean().clamp(min=_EPS)
        target = (grad_norms.mean() * relative**self.alpha).detach()
        gradnorm_loss = (grad_norms - target).abs().sum()
        (w_grad,) = torch.autograd.grad(gradnorm_loss, w)
        self.loss_weights.grad = w_grad
        self.last_grad_norms = grad_norms.detach()
        return total.detach()

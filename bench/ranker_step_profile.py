"""Where a float32 training step goes: ours vs torch-rechub's, against the matmul floor (by hand).

At the sizes of ``bench/ranker_vs_rechub.py`` (KuaiRand, 47 features, embedding
width 8, experts ``[128, 64]``, towers ``[32]``, MMoE 4 experts, PLE 2 levels x
(2 shared + 1 per task), batch 1024, Adam fused, one thread) it measures, per
model and side:

- the CPU time of a training step (forward, losses, backward, Adam), averaged
  over ``--steps`` steps after a warm-up;
- the CPU time of the same step's matrix products alone (``mm``, ``addmm``,
  ``bmm``, ``baddbmm``, their shapes recorded by ``torch.profiler`` from one
  step and replayed on random contiguous tensors): the part of the step no
  rewrite of the model's non-matmul code can remove;

and prints ours/theirs and the largest ratio ours could reach if everything
of our step but its matrix products took no time (theirs unchanged).
``--compile`` also times ``torch.compile`` (inductor) of our forward + losses:
the first step (compilation, wall clock: inductor compiles in worker
processes) and the steady step's CPU time.

CPU time (``time.process_time``) rather than wall clock, so that other jobs on
a shared machine disturb the figures less. Data as for ``bench/kuairand_results.py``.

Usage:
    python bench/ranker_step_profile.py [--archs mmoe,ple] [--steps 60] [--compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from collections.abc import Callable

import torch
from ranker_vs_rechub import TheirSide
from torch import Tensor

from ranker import BUILDERS, CategoricalFeature, SequenceFeature, TaskSpec
from ranker.data import encode_features, encode_labels
from ranker.kuairand import load_kuairand

BATCH = 1024
MATMULS = {"aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm,
           "aten::baddbmm": torch.baddbmm}
Step = Callable[[int], None]
"""A training step on the batch starting at row ``lo``."""


def _cpu_ms(fn: Callable[[], object], n: int) -> float:
    """Mean CPU milliseconds of ``fn()`` over ``n`` calls."""
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e3


def _matmul_floor_ms(step: Step, n: int) -> tuple[int, float]:
    """Number of matrix products in one step, and their CPU ms replayed alone."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step(0)
    calls = []
    for event in prof.events():
        if event.name in MATMULS:
            args = [torch.randn(shape) for shape in event.input_shapes if shape]
            calls.append((MATMULS[event.name], args))

    def replay() -> None:
        for fn, args in calls:
            fn(*args)

    _cpu_ms(replay, 5)
    return len(calls), _cpu_ms(replay, n)


def _ours(arch: str, features: list, tasks: list[TaskSpec], cat: Tensor, num: Tensor,
          labels: dict[str, Tensor], compile_: bool = False) -> Step:
    config_cls, builder = BUILDERS[arch]
    model = builder(features, tasks, config_cls(), seed=0)
    model.embedding.fit_numeric(num)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-6, fused=True)
    model.train()

    def loss(c: Tensor, x: Tensor, y: dict[str, Tensor]) -> Tensor:
        return sum(model.losses(model(c, x), y).values())  # type: ignore[return-value]

    loss_fn = torch.compile(loss, dynamic=False) if compile_ else loss

    def step(lo: int) -> None:
        hi = lo + BATCH
        total = loss_fn(cat[lo:hi], num[lo:hi], {t: y[lo:hi] for t, y in labels.items()})
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step


def _theirs(side: TheirSide, cat: Tensor, num: Tensor, labels: dict[str, Tensor]) -> Step:
    optimizer = torch.optim.Adam(side.model.parameters(), lr=2e-3, weight_decay=1e-6, fused=True)
    side.model.train()

    def step(lo: int) -> None:
        hi = lo + BATCH
        total = side.losses(side.forward(cat[lo:hi], num[lo:hi]),
                            {t: y[lo:hi] for t, y in labels.items()})
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=None, help="data folder (default: see kuairand)")
    parser.add_argument("--archs", default="mmoe,ple")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--embed-dim", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_kuairand(args.path)
    features = [
        dataclasses.replace(f, dim=args.embed_dim)
        if isinstance(f, CategoricalFeature | SequenceFeature) else f
        for f in data.features
    ]
    tasks = list(data.tasks)
    rows = data.train.data
    cat, num = encode_features(rows.features, features)
    labels = encode_labels(rows.labels, tasks)
    starts = range(0, cat.shape[0] - BATCH, BATCH)
    print("| model | side | step CPU ms | matmuls | matmuls alone CPU ms | rest CPU ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for arch in args.archs.split(","):
        side = TheirSide(arch, features, tasks, rows, seed=0)
        t_cat, t_num, t_labels = side.tensors(rows)
        steps = {"ours": _ours(arch, features, tasks, cat, num, labels),
                 "theirs": _theirs(side, t_cat, t_num, t_labels)}
        measured: dict[str, tuple[float, float]] = {}
        for name, step in steps.items():
            it = itertools.cycle(starts)
            _cpu_ms(lambda s=step, i=it: s(next(i)), 10)
            ms = _cpu_ms(lambda s=step, i=it: s(next(i)), args.steps)
            count, floor = _matmul_floor_ms(step, args.steps)
            measured[name] = ms, floor
            print(f"| {arch} | {name} | {ms:.2f} | {count} | {floor:.2f} ({floor / ms:.0%}) "
                  f"| {ms - floor:.2f} |", flush=True)
        (ours, ours_floor), (theirs, _) = measured["ours"], measured["theirs"]
        print(f"{arch}: ours/theirs {theirs / ours:.2f}x; at most {theirs / ours_floor:.2f}x "
              f"if our non-matmul time were zero; 1.5x needs our step at {theirs / 1.5:.2f} ms "
              f"(non-matmul {theirs / 1.5 - ours_floor:.2f} ms instead of "
              f"{ours - ours_floor:.2f})", flush=True)
        if args.compile:
            step = _ours(arch, features, tasks, cat, num, labels, compile_=True)
            wall = time.perf_counter()
            step(0)
            wall = time.perf_counter() - wall
            it = itertools.cycle(starts)
            _cpu_ms(lambda s=step, i=it: s(next(i)), 10)
            ms = _cpu_ms(lambda s=step, i=it: s(next(i)), args.steps)
            print(f"{arch}: torch.compile first step {wall:.1f} s wall, then {ms:.2f} ms CPU "
                  f"a step (eager {ours:.2f})", flush=True)


if __name__ == "__main__":
    main()

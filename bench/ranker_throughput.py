"""Throughput of MMoE training and inference on synthetic rows (not a test; run by hand).

Usage (from the repository root):
    python bench/ranker_throughput.py [--rows 200000] [--threads 2]
    python bench/ranker_throughput.py --sparse 20 --numeric 0 --experts 256,128 --towers 64

Default setup: 5 categorical features (vocab 10,000, dim 16) + 5 numeric, tasks
click and buy (after:click), MMoE(4 experts, (128, 64)), towers (32,), batch 1024.
The second line is the torch-rechub reference of DESIGN.md (20 sparse features,
experts [256, 128], towers [64]).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ranker import (
    CategoricalFeature,
    FeatureSpec,
    MMoEConfig,
    NumericFeature,
    RankerData,
    TaskSpec,
    TrainConfig,
    build_mmoe,
    predict,
    train,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sparse", type=int, default=5)
    parser.add_argument("--numeric", type=int, default=5)
    parser.add_argument("--experts", default="128,64")
    parser.add_argument("--towers", default="32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.rows
    feats = {f"c{i}": rng.integers(0, 10_000, n) for i in range(args.sparse)}
    feats.update({f"x{i}": rng.normal(size=n) for i in range(args.numeric)})
    click = (rng.random(n) < 0.3).astype(np.float32)
    buy = (rng.random(n) < 0.1).astype(np.float32) * click
    data = RankerData(feats, {"click": click, "buy": buy})
    specs: list[FeatureSpec] = [
        CategoricalFeature(f"c{i}", 10_000, 16) for i in range(args.sparse)
    ]
    specs += [NumericFeature(f"x{i}") for i in range(args.numeric)]
    tasks = [TaskSpec("click"), TaskSpec("buy", "after:click")]
    model = build_mmoe(
        specs,
        tasks,
        MMoEConfig(
            n_experts=4,
            expert_hidden=tuple(int(h) for h in args.experts.split(",")),
            tower_hidden=tuple(int(h) for h in args.towers.split(",") if h),
        ),
    )
    valid = data.take(np.arange(min(n, 20_000)))
    cfg = TrainConfig(epochs=args.epochs, batch_size=1024, patience=args.epochs)
    result = train(model, data, valid, cfg, progress=False)
    for rec in result.history:
        print(f"train epoch {int(rec['epoch'])}: {rec['rows_per_s']:,.0f} rows/s")
    t0 = time.perf_counter()
    predict(model, feats, batch_size=8192)
    dt = time.perf_counter() - t0
    print(f"inference (predict, batch 8192, incl. validation/encoding): {n / dt:,.0f} rows/s")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"threads={torch.get_num_threads()} rows={n} params={n_params:,}")


if __name__ == "__main__":
    main()

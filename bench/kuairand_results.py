"""Every registered ranker on real KuaiRand-Pure: test AUC and GAUC per task (run by hand).

Trains each architecture of ``ranker.BUILDERS`` with its default config on the
train days (2022-04-25..05-04), early-stopping on the validation days
(05-05..05-06), and prints a markdown table of test-day (05-07..05-08) AUC and
per-user GAUC for each task, with training throughput. Tasks with
``"after:click"`` are scored on clicked rows only (conditional AUC / GAUC).

Usage (from the repository root; data from ``$FUSIONTUNE_KUAIRAND`` or
``../shared/data/kuairand-pure``):
    python bench/kuairand_results.py [--models mmoe,ple] [--rows 100000] [--threads 1]

One thread is the default: on a busy 2-core machine two torch threads train
small batches many times slower than one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ranker import BUILDERS, TrainConfig, evaluate, predict, train
from ranker.gauc import task_gauc
from ranker.kuairand import load_kuairand


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default=None, help="data folder (default: see module doc)")
    parser.add_argument("--models", default=",".join(BUILDERS), help="comma-separated")
    parser.add_argument("--rows", type=int, default=0, help="subsample train rows (0: all)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in BUILDERS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {sorted(BUILDERS)}")
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    data = load_kuairand(args.path)
    load_s = time.perf_counter() - start
    train_rows = data.train.data
    if 0 < args.rows < train_rows.n_rows:
        rng = np.random.default_rng(args.seed)
        train_rows = train_rows.take(np.sort(rng.choice(train_rows.n_rows, args.rows, False)))
    test = data.test
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
    )
    print(
        f"KuaiRand-Pure from {data.path} loaded in {load_s:.1f}s: train {train_rows.n_rows:,} "
        f"rows, valid {data.valid.n_rows:,}, test {test.n_rows:,}; "
        f"{len(data.features)} features; tasks "
        + ", ".join(f"{t.name}" + (f" ({t.sample_space})" if t.parent else "") for t in data.tasks)
    )
    print(f"threads={torch.get_num_threads()} {config}\n")

    lines = [
        "| model | task | test AUC | test GAUC | GAUC users | best epoch | train rows/s "
        "| train s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        config_cls, builder = BUILDERS[name]
        model = builder(data.features, data.tasks, config_cls())
        t0 = time.perf_counter()
        try:
            result = train(model, train_rows, data.valid.data, config, progress=False)
        except Exception as err:  # one broken architecture must not hide the others' rows
            print(f"{name}: training failed: {type(err).__name__}: {err}", flush=True)
            lines.append(f"| {name} | (failed: {type(err).__name__}) | | | | | | |")
            continue
        train_s = time.perf_counter() - t0
        rows_per_s = float(np.mean([h["rows_per_s"] for h in result.history]))
        metrics = evaluate(result.model, test.data)
        gaucs = task_gauc(
            test.data.labels, predict(result.model, test.data.features), test.user_id, data.tasks
        )
        for task in data.tasks:
            m, g = metrics[task.name], gaucs[task.name]
            lines.append(
                f"| {name} | {task.name} | {m.auc:.4f} | {g.value:.4f} | {g.n_groups:,} "
                f"| {result.best_epoch} | {rows_per_s:,.0f} | {train_s:.0f} |"
            )
        print(f"{name}: {len(result.history)} epochs, {train_s:.0f}s", flush=True)
    print()
    print("\n".join(lines))
    print(f"\ntotal {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()

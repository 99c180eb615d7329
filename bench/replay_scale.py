"""Replay at scale: in memory, streamed from a partitioned dataset, and sharded on Dask.

Claims (issue 12): a streamed replay costs within 1.3x of the in-memory one per
candidate, its cost is linear in candidates, and its peak memory is set by the chunk, not
the log (a 100M-candidate streamed run under 3 GB). Named baseline: bench/replay.py's
numpy loop (fuse, argsort, top-5 label sums, one vector at a time) on one chunk of the
same log.

For each size (candidates; 20 a request, 4 tasks, top-5 of a log written in
``--partitions`` Parquet files) it times one 64-vector generation with SNIPS and a
200-resample bootstrap on the search half of the log (the hash split), each variant in a
fresh process so its peak RSS is its own: in memory (only up to ``--in-memory-max``
candidates), streamed (one process), and Dask with ``--dask-workers`` worker processes
(peak RSS of the driver and of every worker). Each process times ``--repeats``
generations: the first (lazy set-up and cold caches included) and the fastest of the rest,
a search's steady generation, from which it prints ms per vector per 1M replayed
candidates, with peak RSS and the streamed / in-memory ratio of the same run.

Run: ``nice python bench/replay_scale.py [--sizes 1000000,10000000] [--huge]``
(``--huge`` adds 100M candidates; it writes ~10 GB of Parquet under ``--data``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay import TASKS, make_log, numpy_loop  # noqa: E402

K = 5
CHUNK = 50_000  # requests generated and written at a time (1M candidates of 20)
OBJECTIVE = {"click": 1.0, "conversion": 10.0, "like": 5.0, "watch": 1.0}


def _rss_mb() -> float:
    """Peak RSS of this process, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_data(folder: Path, candidates: int, partitions: int) -> None:
    """The bench log and its scores as ``partitions`` files each, written chunk by chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (folder / "done").exists():
        return
    requests = candidates // 20
    bounds = np.linspace(0, requests, partitions + 1).astype(int)
    index = 0
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        writers: dict[str, Any] = {}
        for start in range(a, b, CHUNK):
            size = min(CHUNK, b - start)
            traffic, scores = make_log(size, 20, K, seed=index)
            index += 1
            cols = traffic.to_columns()
            cols["request_id"] = cols["request_id"] + start
            score_cols = {"request_id": cols["request_id"], "item_id": cols["item_id"]}
            score_cols.update({f"p_{t}": scores[..., i].reshape(-1)
                               for i, t in enumerate(TASKS)})
            meta = {b"fusiontune.examination": json.dumps(
                [float(x) for x in traffic.examination]).encode()}  # type: ignore[union-attr]
            for name, c in (("logs", cols), ("scores", score_cols)):
                table = pa.table(c).replace_schema_metadata(meta if name == "logs" else {})
                if name not in writers:
                    (folder / name).mkdir(parents=True, exist_ok=True)
                    writers[name] = pq.ParquetWriter(folder / name / f"part-{p:04d}.parquet",
                                                     table.schema)
                writers[name].write_table(table)
        for w in writers.values():
            w.close()
    (folder / "done").write_text("")


def _settings(folder: Path) -> Any:
    from tuner.evaluation.search_data import SearchSettings

    return SearchSettings(logs=str(folder / "logs"), scores=str(folder / "scores"),
                          objective=OBJECTIVE, n_bootstrap=200)


def run_variant(variant: str, folder: Path, vectors: int, workers: int, repeats: int = 2
                ) -> dict[str, Any]:
    """Time ``repeats`` generations of ``variant`` in this process; its peak RSS."""
    import torch  # noqa: F401  (imported before the clock starts, as in every variant)

    weights = np.random.default_rng(1).uniform(0.0, 2.0, size=(vectors, len(TASKS)))
    out: dict[str, Any] = {"variant": variant}
    if variant == "baseline":
        from simulator.logs import LoggedTraffic

        traffic = LoggedTraffic.read(sorted((folder / "logs").glob("*.parquet"))[0])
        traffic = traffic.take(np.arange(min(CHUNK, traffic.n_requests)))
        scores = make_log(traffic.n_requests, 20, K, seed=0)[1]
        labels = traffic.label_matrix(TASKS)
        n = min(8, vectors)
        start = time.perf_counter()
        numpy_loop(scores, labels, weights[:n], K)
        out["seconds"] = out["first"] = (time.perf_counter() - start) * vectors / n
        out["replayed"] = traffic.n_requests * 20
    elif variant == "in-memory":
        from simulator.logs import LoggedTraffic
        from tuner.evaluation.scores import ScoreTable
        from tuner.evaluation.search_data import Workspace

        files = sorted((folder / "logs").glob("*.parquet"))
        traffic = LoggedTraffic.concatenate([LoggedTraffic.read(f) for f in files])
        table = _concat_scores([ScoreTable.read(f) for f in
                                sorted((folder / "scores").glob("*.parquet"))])
        ws = Workspace(_settings(folder), traffic, table)
        replay = ws.replay("search")
        out.update(_timed(lambda: replay.evaluate(weights, OBJECTIVE), repeats))
        out["replayed"] = ws.parts["search"].n_requests * 20
    else:
        from tuner.evaluation.streamed import StreamedWorkspace

        ws = StreamedWorkspace(_settings(folder))
        if variant == "streamed":
            replay = ws.replay("search")
        else:
            from tuner.evaluation.dask_engine import sharded_replay, start_client

            replay = sharded_replay(ws, start_client(workers))
        timed = _timed(lambda: replay.evaluate(weights, OBJECTIVE), repeats)
        out.update(timed)
        out["replayed"] = timed["result"].n * 20
        if variant == "dask":
            rss = replay.client.run(_rss_mb)  # type: ignore[attr-defined]
            out["worker_rss_mb"] = sorted(float(v) for v in rss.values())
            replay.close()  # type: ignore[attr-defined]
    out.pop("result", None)
    out["rss_mb"] = _rss_mb()
    return out


def _timed(generation: Any, repeats: int) -> dict[str, Any]:
    """Run ``generation`` ``repeats`` times: the first one's seconds (``first``: lazy set-up
    and cold caches included) and the fastest of the rest (``seconds``, a search's steady
    generation; the first when ``repeats`` is 1), with its CPU seconds in this process
    (``cpu``: all its threads; on a machine shared with other work, the fairer measure)."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = generation()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"first": times[0], "seconds": min(times[1:] or times),
            "cpu": min(cpu[1:] or cpu), "result": result}


def _concat_scores(tables: list[Any]) -> Any:
    from tuner.evaluation.scores import ScoreTable

    return ScoreTable(np.concatenate([t.request_ids for t in tables]),
                      np.concatenate([t.item_ids for t in tables]),
                      {k: np.concatenate([t.scores[k] for t in tables]) for k in tables[0].tasks})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="Candidates of each log, comma-separated.")
    parser.add_argument("--huge", action="store_true", help="Add 100,000,000 candidates.")
    parser.add_argument("--vectors", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--in-memory-max", type=int, default=2_000_000,
                        help="Largest log replayed in memory (~740 bytes a candidate).")
    parser.add_argument("--repeats", type=int, default=2,
                        help="Generations timed in each process: the first, and the fastest "
                             "of the rest (a search's steady generation).")
    parser.add_argument("--data", default="/tmp/fusiontune-replay-scale")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child: one measurement
        print(json.dumps(run_variant(args.variant, Path(args.folder), args.vectors,
                                     args.dask_workers, args.repeats)))
        return
    sizes = [int(s) for s in args.sizes.split(",")] + ([100_000_000] if args.huge else [])
    print(f"{args.vectors} vectors, SNIPS + 200-resample bootstrap, top-{K} of 20, "
          f"{len(TASKS)} tasks, {args.partitions} partitions, search half of each log")
    print(f"{'candidates':>12} {'variant':<34} {'first s':>7} {'s/gen':>7} {'ms/vec/1M':>10} "
          f"{'CPU ms/vec/1M':>13} {'peak RSS MB (driver; workers)':>30}")
    for size in sizes:
        folder = Path(args.data) / f"c{size}"
        write_data(folder, size, args.partitions)
        variants = ["baseline"] + (["in-memory"] if size <= args.in_memory_max else []) + [
            "streamed"] + (["dask"] if args.dask_workers else [])
        per_variant: dict[str, tuple[float, float]] = {}
        for v in variants:
            cmd = [sys.executable, __file__, "--variant", v, "--folder", str(folder),
                   "--vectors", str(args.vectors), "--dask-workers", str(args.dask_workers),
                   "--repeats", str(args.repeats)]
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if done.returncode:
                print(f"{size:>12,} {v:<34} failed: {done.stderr.strip()[-300:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            per = r["seconds"] / args.vectors * 1e3 / (r["replayed"] / 1e6)
            name = {"baseline": "numpy loop on one chunk (baseline)",
                    "dask": f"dask, {args.dask_workers} workers"}.get(v, v)
            rss = f"{r['rss_mb']:.0f}" + (f"; {', '.join(f'{x:.0f}' for x in r['worker_rss_mb'])}"
                                          if "worker_rss_mb" in r else "")
            cpu = (f"{r['cpu'] / args.vectors * 1e3 / (r['replayed'] / 1e6):.2f}"
                   if "cpu" in r and v != "dask" else "-")  # dask: the work is the workers'
            print(f"{size:>12,} {name:<34} {r['first']:>7.2f} {r['seconds']:>7.2f} {per:>10.2f} "
                  f"{cpu:>13} {rss:>30}", flush=True)
            if v in ("in-memory", "streamed"):
                per_variant[v] = (per, r["cpu"] / r["replayed"])
        if len(per_variant) == 2:
            (wall_s, cpu_s), (wall_m, cpu_m) = per_variant["streamed"], per_variant["in-memory"]
            print(f"{size:>12,} {'streamed / in-memory':<34} {'':>7} {'':>7} "
                  f"{wall_s / wall_m:>10.2f} {cpu_s / cpu_m:>13.2f}", flush=True)


if __name__ == "__main__":
    main()

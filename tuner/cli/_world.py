"""``fusiontune world generate``: a world's log as a partitioned Parquet dataset, in chunks.

The log goes to ``OUT/logs/part-<i>.parquet`` and a score table a search can run on
(the world's true probabilities times seeded log-normal noise, an imperfect ranker) to
``OUT/scores/part-<i>.parquet``, partition ``i`` holding a consecutive range of request
ids; each file is written chunk by chunk (one row group per chunk), so the whole log is
never in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from simulator.logs import LoggedTraffic
from tuner.cli._common import dump, user_errors

__all__ = ["world"]

WORLDS = ("marketplace", "kuairand")
CHUNK_REQUESTS = 20_000
"""Requests generated and written at a time (~400,000 candidate rows of 20)."""
SCORE_NOISE = 0.3
"""Std of the log-normal noise on each true probability in the score table."""


def parse_candidates(text: str) -> int:
    """``--candidates 20`` -> 20; a range ``10:40`` is refused until worlds draw ragged
    requests.

    Raises:
        ValueError: a range, or not a positive integer.

    Example:
        >>> parse_candidates("20")
        20
    """
    if ":" in text:
        raise ValueError(
            f"--candidates {text}: ragged generation needs the worlds' ragged-request "
            "option, which this build lacks; give one number of candidates per request "
            "(e.g. --candidates 20)")
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"--candidates {text!r}: give a positive integer, e.g. 20")
    return n


def _chunk(world_name: str, seed: int, index: int, requests: int, candidates: int) -> Any:
    """The world whose ``generate()`` draws chunk ``index`` of ``requests`` requests: the
    same users, items and response model for every chunk, a traffic stream of its own."""
    from simulator.worlds import KuaiRandConfig, KuaiRandWorld, MarketplaceConfig, MarketplaceWorld

    if world_name == "kuairand":  # its config seed drives the traffic alone
        return KuaiRandWorld(KuaiRandConfig(n_requests=requests, n_candidates=candidates,
                                            seed=seed * 1_000_003 + index))
    world = MarketplaceWorld(MarketplaceConfig(n_requests=requests, n_candidates=candidates,
                                               seed=seed))
    # the marketplace draws its population and its traffic from two streams of the seed;
    # each chunk keeps the population and takes a traffic stream of its own
    world._traffic_seq = np.random.SeedSequence([seed, 7, index])  # type: ignore[attr-defined]
    return world


def _score_columns(world: Any, traffic: LoggedTraffic, seed: int, index: int
                   ) -> dict[str, np.ndarray]:
    """The long score table of a chunk: ``request_id, item_id, p_<task>...``."""
    truth = world.true_probabilities(traffic)  # [c, N, T]
    rng = np.random.default_rng([seed, 11, index])
    noisy = np.clip(truth * rng.lognormal(0.0, SCORE_NOISE, truth.shape), 1e-6, 1.0)
    n = traffic.n_candidates
    cols = {"request_id": np.repeat(traffic.request_ids, n),
            "item_id": traffic.item_ids.reshape(-1)}
    cols.update({f"p_{t}": noisy[..., i].reshape(-1) for i, t in enumerate(world.tasks)})
    return cols


class _Writer:
    """One Parquet file written a row group at a time (schema and metadata of the first)."""

    def __init__(self, path: Path, meta: dict[bytes, bytes] | None = None) -> None:
        self.path, self.meta = path, meta or {}
        self.writer: Any = None

    def write(self, columns: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(columns)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            table = table.replace_schema_metadata(self.meta)
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.replace_schema_metadata(self.meta))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def generate_dataset(world_name: str, requests: int, candidates: int, partitions: int,
                     out: Path, seed: int = 0) -> dict[str, Any]:
    """Write the partitioned log and score table; returns what was written."""
    bounds = np.linspace(0, requests, partitions + 1).astype(np.int64)
    index, rows = 0, 0
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        log_w = score_w = None
        try:
            for start in range(int(a), int(b), CHUNK_REQUESTS):
                size = min(CHUNK_REQUESTS, int(b) - start)
                world = _chunk(world_name, seed, index, size, candidates)
                drawn = world.generate()
                traffic = LoggedTraffic(**{
                    **{f: getattr(drawn, f) for f in drawn.__dataclass_fields__},
                    "request_ids": drawn.request_ids + start})
                if log_w is None:
                    meta = {b"fusiontune.label_kinds": json.dumps(dict(traffic.label_kinds))
                            .encode(), b"fusiontune.examination": json.dumps(
                                [float(x) for x in world.examination]).encode()}
                    log_w = _Writer(out / "logs" / f"part-{p:04d}.parquet", meta)
                    score_w = _Writer(out / "scores" / f"part-{p:04d}.parquet")
                assert score_w is not None
                log_w.write(traffic.to_columns())
                score_w.write(_score_columns(world, traffic, seed, index))
                index += 1
                rows += size * candidates
        finally:
            for w in (log_w, score_w):
                if w is not None:
                    w.close()
    return {"world": world_name, "requests": requests, "candidates": rows,
            "partitions": partitions, "logs": str(out / "logs"), "scores": str(out / "scores")}


@click.group("world")
def world() -> None:
    """Worlds with known ground truth, written as datasets a search can run on."""


@world.command("generate")
@click.option("--world", "world_name", type=click.Choice(WORLDS), default="marketplace",
              show_default=True, help="kuairand needs ../shared/data (fitted once, cached).")
@click.option("--requests", type=click.IntRange(min=1), required=True)
@click.option("--candidates", default="20", show_default=True,
              help="Candidates per request (a range such as 10:40 needs ragged worlds).")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parquet files of the log (and of the score table), by request range.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder: OUT/logs/ and OUT/scores/.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@user_errors
def world_generate(world_name: str, requests: int, candidates: str, partitions: int, out: str,
                   seed: int, as_json: bool) -> None:
    """Write a world's log and a noisy score table as partitioned Parquet, in chunks.

    Then: fusiontune search run --logs OUT/logs --scores OUT/scores --objective ...
    """
    n = parse_candidates(candidates)
    if partitions > requests:
        raise ValueError(f"--partitions {partitions} exceeds --requests {requests}")
    done = generate_dataset(world_name, requests, n, partitions, Path(out), seed)
    if as_json:
        dump(done)
    else:
        click.echo(f"wrote {done['candidates']:,} candidates of {requests:,} requests in "
                   f"{partitions} partition(s): {done['logs']} and {done['scores']}")

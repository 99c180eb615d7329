"""``fusiontune world generate``: a world's log as a partitioned Parquet dataset, in chunks.

The log goes to ``OUT/logs/part-<i>.parquet`` and a score table a search can run on
(the world's true probabilities times seeded log-normal noise, an imperfect ranker) to
``OUT/scores/part-<i>.parquet``, partition ``i`` holding a consecutive range of request
ids; each file is written chunk by chunk (one row group per chunk), so the whole log is
never in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from simulator.logs import LoggedTraffic, log_metadata
from tuner.cli._common import dump, user_errors

__all__ = ["world"]

WORLDS = ("marketplace", "kuairand")
CHUNK_REQUESTS = 20_000
"""Requests generated and written at a time (~400,000 candidate rows of 20)."""
SCORE_NOISE = 0.3
"""Std of the log-normal noise on each true probability in the score table."""
PROPENSITIES = ("full", "shown")
"""``full``: ``pscore_<k>`` of every candidate at every slot (and ``prefix_pscore``);
``shown``: only ``pscore``, the propensity of each shown impression, as production
logging records it (the page size goes in the metadata, ``fusiontune.slots``)."""


def parse_candidates(text: str) -> tuple[int, int]:
    """``--candidates 20`` -> ``(20, 20)``; a ragged range ``10:40`` -> ``(10, 40)``.

    Raises:
        ValueError: not a positive integer or a range ``low:high`` of them.

    Example:
        >>> parse_candidates("20"), parse_candidates("10:40")
        ((20, 20), (10, 40))
    """
    parts = text.split(":")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        low = high = 0
    if not 1 <= low <= high:
        raise ValueError(f"--candidates {text!r}: give a positive integer (e.g. 20) or a "
                         "range low:high of them (e.g. 10:40, ragged requests)")
    return low, high


def make_world(world_name: str, seed: int, candidates: tuple[int, int]) -> Any:
    """The world whose :meth:`generate_chunk` draws every chunk: one population of users,
    items and responses, a traffic stream of each chunk's own."""
    from simulator.worlds import KuaiRandConfig, KuaiRandWorld, MarketplaceConfig, MarketplaceWorld

    low, high = candidates
    shape: dict[str, Any] = ({"n_candidates": low} if low == high
                             else {"candidates": (low, high)})
    if world_name == "kuairand":
        return KuaiRandWorld(KuaiRandConfig(seed=seed, **shape))
    return MarketplaceWorld(MarketplaceConfig(seed=seed, **shape))


def _score_columns(world: Any, traffic: LoggedTraffic, seed: int, index: int
                   ) -> dict[str, np.ndarray]:
    """The long score table of a chunk: ``request_id, item_id, p_<task>...`` (one row per
    candidate of the log, padding of ragged requests left out)."""
    truth = world.true_probabilities(traffic)  # [c, N, T]
    rng = np.random.default_rng([seed, 11, index])
    noisy = np.clip(truth * rng.lognormal(0.0, SCORE_NOISE, truth.shape), 1e-6, 1.0)
    valid = (np.ones(traffic.item_ids.shape, bool) if traffic.valid is None
             else traffic.valid)
    rows = np.broadcast_to(traffic.request_ids[:, None], valid.shape)
    cols = {"request_id": rows[valid], "item_id": traffic.item_ids[valid]}
    cols.update({f"p_{t}": noisy[..., i][valid] for i, t in enumerate(world.tasks)})
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


def generate_dataset(world_name: str, requests: int, candidates: tuple[int, int],
                     partitions: int, out: Path, seed: int = 0,
                     propensities: str = "full") -> dict[str, Any]:
    """Write the partitioned log and score table; returns what was written.

    ``propensities`` is one of :data:`PROPENSITIES`.
    """
    if propensities not in PROPENSITIES:
        raise ValueError(f"propensities {propensities!r}: valid are {list(PROPENSITIES)}")
    world = make_world(world_name, seed, candidates)
    bounds = np.linspace(0, requests, partitions + 1).astype(np.int64)
    index, rows = 0, 0
    for p, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        log_w = score_w = None
        try:
            for start in range(int(a), int(b), CHUNK_REQUESTS):
                size = min(CHUNK_REQUESTS, int(b) - start)
                traffic = world.generate_chunk(size, start_request_id=start, seed=seed)
                logged = traffic if propensities == "full" else traffic.shown_only()
                if log_w is None:
                    meta = log_metadata(world.examination, traffic.label_kinds,
                                        None if logged.pscores is not None else logged.slots)
                    log_w = _Writer(out / "logs" / f"part-{p:04d}.parquet", meta)
                    score_w = _Writer(out / "scores" / f"part-{p:04d}.parquet")
                assert score_w is not None
                log_w.write(logged.to_columns())
                score_w.write(_score_columns(world, traffic, seed, index))
                index += 1
                rows += int(traffic.candidate_counts.sum())
        finally:
            for w in (log_w, score_w):
                if w is not None:
                    w.close()
    return {"world": world_name, "requests": requests, "candidates": rows,
            "partitions": partitions, "propensities": propensities,
            "logs": str(out / "logs"), "scores": str(out / "scores")}


@click.group("world")
def world() -> None:
    """Worlds with known ground truth, written as datasets a search can run on."""


@world.command("generate")
@click.option("--world", "world_name", type=click.Choice(WORLDS), default="marketplace",
              show_default=True, help="kuairand needs ../shared/data (fitted once, cached).")
@click.option("--requests", type=click.IntRange(min=1), required=True)
@click.option("--candidates", default="20", show_default=True,
              help="Candidates per request, or a range such as 10:40: ragged requests, each "
                   "drawing its number uniformly.")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parquet files of the log (and of the score table), by request range.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder: OUT/logs/ and OUT/scores/.")
@click.option("--propensities", type=click.Choice(PROPENSITIES), default="full",
              show_default=True,
              help="full: every candidate's propensity at every slot (pscore_<k>); shown: "
                   "only the shown impressions' (pscore), as production logging records "
                   "it (for the slot_* and dm estimators).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@user_errors
def world_generate(world_name: str, requests: int, candidates: str, partitions: int, out: str,
                   propensities: str, seed: int, as_json: bool) -> None:
    """Write a world's log and a noisy score table as partitioned Parquet, in chunks.

    Then: fusiontune search run --logs OUT/logs --scores OUT/scores --objective ...
    """
    shape = parse_candidates(candidates)
    if partitions > requests:
        raise ValueError(f"--partitions {partitions} exceeds --requests {requests}")
    done = generate_dataset(world_name, requests, shape, partitions, Path(out), seed,
                            propensities)
    if as_json:
        dump(done)
    else:
        click.echo(f"wrote {done['candidates']:,} candidates of {requests:,} requests in "
                   f"{partitions} partition(s): {done['logs']} and {done['scores']}")

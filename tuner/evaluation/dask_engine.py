"""Dask engine: each generation evaluated by tasks that read their own files of the log.

The driver holds no log: it sends each task a :class:`~tuner.evaluation.streamed.PartChunks`
(which files of the log to read, and how to find their scores) and the population; the
task streams its files and returns :class:`~simulator.streaming.PopulationSums`, which
the driver adds in the order of the files. Since the bootstrap is keyed by request id and
the sums add, the trials are those of the embedded streamed search (to floating-point
summation error), whatever the number of workers.

``dask[distributed]`` is imported here only, when ``search run --engine dask`` asks.

Example:
    >>> objective = dask_objective(study.settings, workers=2)  # doctest: +SKIP
    >>> results = objective(weights)  # doctest: +SKIP
    >>> objective.replay.close()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.streaming import PopulationSums, StreamedReplay
from tuner.evaluation.loss_study import is_loss_study
from tuner.evaluation.objective import FusionObjective
from tuner.evaluation.search_data import SEARCH, SearchSettings
from tuner.evaluation.streamed import PartChunks, StreamedWorkspace

__all__ = ["ShardedReplay", "dask_objective", "close_client", "start_client"]


def start_client(workers: int = 2, scheduler: str | None = None) -> Any:
    """A ``distributed.Client``: of a new local cluster of ``workers`` processes (one
    thread each, no dashboard), or joined to the cluster at ``scheduler``.

    Raises:
        ValueError: dask's distributed scheduler is not installed (``pip install
            'dask[distributed]'``).
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - installed with the package
        raise ValueError("--engine dask needs dask's distributed scheduler: pip install "
                         "'dask[distributed]'") from None
    if scheduler is not None:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, scheduler_port=0)
        client = Client(cluster)
    client.run(_warm)  # each worker imports the replay once, not in its first task
    return client


def _warm() -> None:
    """Import what a task runs (torch among it: seconds on a loaded machine)."""
    import torch  # noqa: F401

    import tuner.evaluation.streamed  # noqa: F401


def _shard_sums(chunks: PartChunks, replay: StreamedReplay, weights: np.ndarray,
                objective: Mapping[str, float] | None) -> PopulationSums:
    """What one task does: stream its own files and return their sums."""
    return StreamedReplay(chunks, replay.tasks, replay.score_tasks, replay.fusion,
                          replay.policy, replay.estimator, replay.interval
                          ).sums(weights, objective)


@dataclass(frozen=True)
class ShardedReplay(StreamedReplay):
    """A streamed replay whose chunks are summed by Dask tasks, one per shard of files.

    Args:
        shards: one reader per task (its files of the log).
        client: the ``distributed.Client``.
    """

    shards: tuple[PartChunks, ...] = ()
    client: Any = None

    def sums(self, weights: np.ndarray, objective: Mapping[str, float] | None = None
             ) -> PopulationSums:
        w = self.fusion.validate_weights(weights, self.score_tasks)
        # the replay's settings travel once per generation, without its chunk reader
        local = StreamedReplay(self.shards[0], self.tasks, self.score_tasks, self.fusion,
                               self.policy, self.estimator, self.interval)
        futures = [self.client.submit(_shard_sums, shard, local, w, objective, pure=False)
                   for shard in self.shards]
        parts = self.client.gather(futures)
        total = parts[0]
        for part in parts[1:]:  # in the files' order: the same sums every run
            total = total + part
        return total  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the client (and the local cluster it started)."""
        close_client(self.client)


def sharded_replay(ws: StreamedWorkspace, client: Any, part: str = SEARCH) -> ShardedReplay:
    """The replay of split ``part`` of a streamed workspace, one Dask task per log file."""
    base = ws.replay(part)
    shards = tuple(ws.chunks(part, (i,)) for i in range(len(ws.logs.files)))
    return ShardedReplay(base.chunks, base.tasks, base.score_tasks, base.fusion, base.policy,
                         base.estimator, base.interval, shards=shards, client=client)


def dask_objective(settings: Mapping[str, Any], workers: int = 2,
                   scheduler: str | None = None, workspace: StreamedWorkspace | None = None,
                   client: Any = None) -> FusionObjective:
    """The study's objective with its generations evaluated on Dask.

    Args:
        settings: the study's stored search settings.
        workers: worker processes of the local cluster (without ``scheduler``).
        scheduler: address of an existing scheduler to join.
        workspace: the study's streamed workspace, if already open (and checked): its
            score index is not read again.
        client: a client already started (:func:`start_client`); ``workers`` and
            ``scheduler`` then do nothing.

    Raises:
        ValueError: a loss-weight study, or an estimator that cannot be streamed.
    """
    if is_loss_study(settings):
        raise ValueError("--engine dask evaluates fusion-weight studies; a loss-weight "
                         "study retrains the ranker in this process")
    ws = workspace if workspace is not None else StreamedWorkspace(
        SearchSettings.from_dict(settings))
    client = client if client is not None else start_client(workers, scheduler)
    try:
        replay = sharded_replay(ws, client)
        base = FusionObjective.for_workspace(ws)
    except BaseException:
        close_client(client)
        raise
    return FusionObjective(replay, base.objective, base.guardrails, base.control)


def close_client(client: Any) -> None:
    """Close ``client`` and the local cluster it started, if any."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()

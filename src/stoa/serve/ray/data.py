"""Batch work on a Ray cluster: scoring and evaluation on Ray Data, embedding on actors.

Each path hands the cluster the function the local path runs (``score_partition``,
``evaluate_partition``, an embedder's ``embed``), so ``--ray`` changes where the work
runs and nothing about what it produces. Workers open the stores from the settings the
driver resolved (``cluster.worker_env``, sent with the job), load a solution or a model
once per actor, and keep it for every partition they are given.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from stoa.core.errors import ConfigurationError

#: The columns of the partitions' dataset: the first row's index, and the rows.
_START, _ROWS = "start", "rows"
#: Times a pool's actor whose process dies (its node lost, out of memory) is restarted
#: and its call retried. The work is a pure function of its input, so a retry gives the
#: same answer; a call that kills its actor every time is a bug, and fails.
RESTARTS = 3


def pool_actor(cls: type) -> Any:
    """``cls`` as the actor of a work pool: one CPU, restarted and retried on death."""
    import ray

    return ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(cls)


@contextmanager
def worker_deaths(work: str) -> Iterator[None]:
    """Ray's error when a pool's worker died more than ``RESTARTS`` times, as Stoa's:
    what failed and what to look at, not a remote traceback."""
    from ray.exceptions import RayError

    try:
        yield
    except RayError as exc:
        raise ConfigurationError(
            f"{work} on Ray failed: a worker died {RESTARTS + 1} times on the same "
            f"piece of work ({type(exc).__name__})",
            field="ray",
            fix="read the worker's log (`ray logs`, or the dashboard); a worker out of "
            "memory needs fewer --workers or more memory per node",
        ) from None


def _environment(settings: Mapping[str, str]) -> Any:
    """The solution runner over the driver's stores: an actor has a process of its own,
    so the driver's settings (``cluster.worker_env``) become its environment."""
    from stoa.client._transport import Local
    from stoa.core.settings import Settings

    os.environ.update(settings)
    return Local(Settings(), actor="ray").solutions


class _Scorer:
    """An actor of the scoring pool: one environment, many partitions."""

    def __init__(self, settings: Any, ref: str, input_columns: Any, overrides: Any):
        self.env = _environment(settings)
        self.ref, self.input_columns, self.overrides = ref, input_columns, overrides

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        from stoa.develop.batch import _schema, score_partition

        records = []
        for start, rows in zip(batch[_START], batch[_ROWS], strict=True):
            records += score_partition(self.env, self.ref, pickle.loads(rows), int(start),
                                       input_columns=self.input_columns,
                                       overrides=self.overrides)  # fmt: skip
        return pa.Table.from_pylist(records, schema=_schema())


def batch_partitions(
    settings: Mapping[str, str],
    ref: str,
    *,
    input_columns: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    workers: int | None = None,
) -> Any:
    """A ``PartitionMapper`` for ``develop.batch.score``: each partition's rows, exactly
    as the local path hands them to ``score_partition`` (pickled, so no value changes
    type on the way), become one block of a Ray dataset; a pool of ``workers`` actors
    (default: one per CPU of the cluster) scores them, and the records come back in
    table order."""
    import ray

    def run(table: Any, partition_rows: int) -> Iterator[list[dict[str, Any]]]:
        from ray.data import DataContext

        context = DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # Stoa's own bar counts the rows
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        parts = [{_START: start, _ROWS: pickle.dumps(
                      table.iloc[start : start + partition_rows].to_dict("records"), protocol=5)}
                 for start in range(0, len(table), partition_rows)]  # fmt: skip
        pool = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        with warnings.catch_warnings():  # the restarts have no named parameter in Ray 2.60
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            scored = ray.data.from_items(parts, override_num_blocks=len(parts)).map_batches(
                _Scorer,
                fn_constructor_kwargs={"settings": dict(settings), "ref": ref,
                                       "input_columns": input_columns, "overrides": overrides},
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(pool, len(parts))),
                num_cpus=1,
                max_restarts=RESTARTS,  # Ray Data's default retries a deadly partition forever
                max_task_retries=RESTARTS,
            )  # fmt: skip
        with worker_deaths("batch scoring"):
            for block in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
                yield block.to_pylist()

    return run


class _Evaluator:
    """An actor of the evaluation pool: the solution and the judges, loaded once."""

    def __init__(
        self, settings: Mapping[str, str], version: str, judges: Sequence[str], overrides: Any
    ):
        from stoa.develop.solution.evaluate import parse_judges

        self.env = _environment(settings)
        self.judges = parse_judges(judges, self.env)
        self.version, self.overrides = version, overrides

    def evaluate(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        from stoa.develop.solution.evaluate import evaluate_partition

        return evaluate_partition(
            self.env, self.version, rows, self.judges, overrides=self.overrides
        )


def eval_partitions(
    settings: Mapping[str, str],
    version: str,
    judges: Sequence[str],
    *,
    overrides: Mapping[str, Any] | None = None,
    workers: int | None = None,
) -> Any:
    """A ``PartitionMapper`` for ``evaluate_solution``: each actor runs the solution and
    its judges over the partitions it is given, in parallel with the others."""
    import ray
    from ray.util import ActorPool

    def run(partitions: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        pool_size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = pool_actor(_Evaluator)
        actors = [actor.remote(dict(settings), version, list(judges), overrides)
                  for _ in range(min(pool_size, len(partitions)))]  # fmt: skip
        try:
            pool = ActorPool(actors)
            with worker_deaths("evaluation"):
                return list(pool.map(lambda a, rows: a.evaluate.remote(rows), partitions))
        finally:
            for handle in actors:
                ray.kill(handle)

    return run


class _Encoder:
    """An actor of the embedding pool: the knowledge base's embedder, loaded once."""

    def __init__(self, settings: Mapping[str, str], spec: Any):
        from stoa.develop.rag.embed import load_embedder

        os.environ.update(settings)
        self.embedder = load_embedder(spec)

    def version(self) -> str:
        return str(self.embedder.version)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embedder.embed(texts), dtype=np.float32)


class RayEmbedder:
    """Embeds across a pool of actors, in shards of ``shard`` texts; the vectors come
    back in the order of the texts, as one embedder's would. Refuses to start when the
    workers load another embedder version than ``version`` (their vectors would not
    compare with the knowledge base's)."""

    def __init__(
        self,
        settings: Mapping[str, str],
        spec: Any,
        version: str,
        *,
        workers: int | None = None,
        shard: int = 64,
    ):
        import ray

        from stoa.core.errors import ConflictError

        size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = pool_actor(_Encoder)
        self._actors = [actor.remote(dict(settings), spec) for _ in range(size)]
        self.shard = shard
        loaded = set(ray.get([a.version.remote() for a in self._actors]))
        if loaded != {version}:
            self.close()
            raise ConflictError(
                f"the Ray workers load embedder {', '.join(sorted(loaded))}, but the "
                f"knowledge base was embedded by {version}",
                field="embedder",
                fix="install the same embedder package version on every node",
            )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from ray.util import ActorPool

        pieces = [list(texts[i : i + self.shard]) for i in range(0, len(texts), self.shard)]
        if not pieces:
            return np.zeros((0, 0), dtype=np.float32)
        pool = ActorPool(self._actors)
        with worker_deaths("embedding"):
            return np.concatenate(list(pool.map(lambda a, t: a.embed.remote(t), pieces)))

    def close(self) -> None:
        import ray

        for handle in self._actors:
            ray.kill(handle)
        self._actors = []

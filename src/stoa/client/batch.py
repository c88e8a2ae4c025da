"""``client.batch``: score a table with a solution, where the table and the output are.

Not a REST route: the table is a local file (or a dataset version downloaded here) and
the output is a local Parquet file, so the work runs in this process on the client's
stores. Over HTTP it is refused rather than shipping a table both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stoa.client._operation import Resource
from stoa.client._transport import Local
from stoa.core.errors import InvalidInputError


class Batch(Resource):
    name = "batch"

    def score(
        self,
        solution: str,
        table: str,
        out: str | Path,
        *,
        input_columns: Sequence[str] | None = None,
        partition_rows: int = 1000,
        overrides: dict[str, dict[str, Any]] | None = None,
        progress: Callable[[int, int], None] | None = None,
        ray: bool | str = False,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Run ``solution`` on every row of ``table`` (a dataset ref or a CSV/Parquet/
        JSONL path) into the new Parquet file ``out``: one row per input row, errors
        included (docs/batch.md). Returns counts by status and the throughput.
        ``ray`` scores the partitions on a Ray cluster (``True``: ``RAY_ADDRESS`` or a
        local one; a string: its address), on ``workers`` actors; the file is the same."""
        from stoa.develop.batch import check_out, score
        from stoa.measure.tables import dataset_fetcher, load_table

        if not isinstance(self._transport, Local):
            raise InvalidInputError(
                "batch scoring runs where the data is; use a local client",
                field="client",
                fix="run it on a machine with the stores (no --url / STOA_URL)",
            )
        check_out(out)  # before a download or a read that may take a while
        frame, source = load_table(table, dataset_fetcher(self._client))
        mapper = None
        if ray:
            from stoa.serve.ray.cluster import address_of, connect, worker_env
            from stoa.serve.ray.data import batch_partitions

            settings = self._local.settings
            self._local.solutions.plan(solution, overrides)  # a bad ref fails before Ray starts
            connect(settings, address_of(ray))
            columns = list(input_columns) if input_columns is not None else None
            mapper = batch_partitions(worker_env(settings), solution, input_columns=columns,
                                      overrides=overrides, workers=workers)  # fmt: skip
        summary = score(
            self._local.solutions, solution, frame, out, source=source,
            input_columns=input_columns, partition_rows=partition_rows, overrides=overrides,
            progress=progress, mapper=mapper,
        )  # fmt: skip
        summary["engine"] = "ray" if ray else "local"
        return summary

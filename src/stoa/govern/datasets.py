"""Dataset versions: CSV, Parquet or JSONL, recognised by content, with schema and row count.

CSV is streamed through pyarrow in batches and Parquet is described from its footer, so
neither is held in memory; JSONL is parsed whole by pyarrow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stoa.core.blobs import Progress
from stoa.core.errors import InvalidInputError
from stoa.govern.formats import detect
from stoa.govern.registry import Registry, check_version_input
from stoa.govern.types import VersionInfo


def detect_dataset_format(path: Path) -> str:
    """parquet, jsonl or csv; anything else (an archive, a pickle, text that is not
    UTF-8) is refused here, before a parser makes columns out of it."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
        handle.seek(0, 2)
        size = handle.tell()
        if size >= 12 and head[:4] == b"PAR1":
            handle.seek(-4, 2)
            if handle.read(4) == b"PAR1":
                return "parquet"
        looks = detect(handle, size)
    if looks not in ("text", "json"):
        what = "text that is not UTF-8" if looks == "maybe-pickle" else f"{looks} data"
        raise InvalidInputError(
            f"{path.name} is {what}, not CSV, Parquet or JSONL",
            field="path",
            fix="save it as UTF-8 CSV, Parquet or JSONL",
        )
    first = head.lstrip().split(b"\n", 1)[0].strip()
    if first.startswith(b"{"):
        try:
            if isinstance(json.loads(first), dict):
                return "jsonl"
        except ValueError:
            pass
    return "csv"


def describe_dataset(path: Path) -> dict[str, Any]:
    """Format, columns with their types and row count; unreadable data names the problem."""
    if not path.is_file():
        raise InvalidInputError(
            f"{path.name} is not a file", field="path", fix="give a CSV, Parquet or JSONL file"
        )
    if path.stat().st_size == 0:
        raise InvalidInputError(
            f"{path.name} is empty", field="path", fix="give a file with a header and rows"
        )
    import pyarrow as pa  # imported here: it costs a tenth of a second for every CLI call
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    fmt = detect_dataset_format(path)
    try:
        if fmt == "parquet":
            meta = pq.ParquetFile(path).metadata
            schema, rows = meta.schema.to_arrow_schema(), meta.num_rows
        elif fmt == "jsonl":
            table = pajson.read_json(path)
            schema, rows = table.schema, table.num_rows
        else:
            reader = pacsv.open_csv(path)
            schema, rows = reader.schema, sum(batch.num_rows for batch in reader)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"{path.name} could not be read as {fmt}: {exc}",
            field="path",
            fix="check the file at the position named above",
        ) from None
    if any("\x00" in f.name for f in schema):
        raise InvalidInputError(f"{path.name} has a column name with a NUL byte", field="path")
    if len(schema) == 0:
        raise InvalidInputError(f"{path.name} has no columns", field="path")
    return {
        "format": fmt,
        "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
        "rows": rows,
    }


def register_dataset(
    registry: Registry,
    name: str,
    path: Path,
    *,
    actor: str,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> VersionInfo:
    path = Path(path)
    check_version_input(name, tags, metadata, description)
    spec = describe_dataset(path)
    stored = registry.blobs.put_path(path, progress)
    return registry.add_version(
        "dataset",
        name,
        stored,
        status="allowed",
        actor=actor,
        fmt=spec["format"],
        description=description,
        tags=tags,
        metadata=metadata,
        spec=spec,
    )

"""MLflow's scoring protocol (``POST /invocations``), so clients written for
``mlflow models serve`` work against ``stoa serve`` unchanged.

JSON bodies carry exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` (with optional ``params``, which Stoa refuses rather than
ignores); ``text/csv`` bodies are a frame with a header row. The answer is
``{"predictions": [...]}``, one per row, as MLflow's.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from stoa.core.errors import InvalidInputError

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
FIX = (
    'send {"dataframe_split": {"columns": [...], "data": [[...]]}}, '
    '{"dataframe_records": [{...}]}, {"instances": [...]} or {"inputs": ...}'
)


def parse_scoring_request(body: bytes, content_type: str) -> tuple[Any, Any]:
    """The request's rows as a pandas frame, and what the logbook keeps of the request
    (its JSON as sent; re-encoding the frame would cost more than predicting it). Every
    malformed body is a 422 naming why."""
    import pandas as pd

    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            frame = pd.read_csv(io.BytesIO(body))
            return frame, {"csv": frame.to_dict(orient="split")}
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"the CSV body is not readable: {' '.join(str(exc).split())[:200]}",
                field="body",
                fix="send a header row, then one row per input",
            ) from None
    if kind not in ("application/json", ""):
        raise InvalidInputError(
            f"content type {kind!r} is not supported",
            field="Content-Type",
            fix="send application/json or text/csv",
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("the body is not valid JSON", field="body", fix=FIX) from None
    if not isinstance(payload, Mapping):
        raise InvalidInputError(
            f"the body is a JSON {type(payload).__name__}, not an object", field="body", fix=FIX
        )
    given = [k for k in FORMATS if k in payload]
    if len(given) != 1:
        what = "none" if not given else ", ".join(given)
        raise InvalidInputError(
            f"the body must have exactly one of {', '.join(FORMATS)} (it has {what})",
            field="body",
            fix=FIX,
        )
    extra = sorted(set(payload) - {*FORMATS, "params"})
    if extra:
        raise InvalidInputError(f"unknown field(s) {', '.join(extra)}", field="body", fix=FIX)
    if payload.get("params"):
        raise InvalidInputError(
            "params are not supported: a registered version runs as it was registered",
            field="params",
            fix="leave params out; register a new version to change it",
        )
    key = given[0]
    frame = _frame(key, payload[key])
    if len(frame) == 0:
        raise InvalidInputError(f"{key} holds no rows", field=key, fix=FIX)
    return frame, payload


def _frame(key: str, value: Any) -> Any:
    import pandas as pd

    try:
        if key == "dataframe_split":
            if not isinstance(value, Mapping) or "data" not in value:
                raise InvalidInputError(
                    "dataframe_split needs data (and usually columns)", field=key, fix=FIX
                )
            unknown = sorted(set(value) - {"columns", "data", "index"})
            if unknown:
                raise InvalidInputError(
                    f"dataframe_split has unknown field(s) {', '.join(unknown)}",
                    field=key,
                    fix="use columns, data and index",
                )
            columns = value.get("columns")
            return pd.DataFrame(
                value["data"],
                # object labels: pandas would otherwise build an Arrow string index per
                # request, the largest cost of a one-row frame
                columns=pd.Index(columns, dtype=object) if columns is not None else None,
                index=value.get("index"),
            )
        if key == "dataframe_records":
            if not isinstance(value, list) or not all(isinstance(r, Mapping) for r in value):
                raise InvalidInputError(
                    "dataframe_records must be a list of objects", field=key, fix=FIX
                )
            return pd.DataFrame.from_records(value)
        # instances / inputs: a list of rows (objects, lists or scalars) or, for inputs,
        # an object of columns.
        if isinstance(value, Mapping):
            columns = {k: v if isinstance(v, list) else [v] for k, v in value.items()}
            return pd.DataFrame(columns)
        if not isinstance(value, list):
            raise InvalidInputError(
                f"{key} must be a list of rows or an object of columns", field=key, fix=FIX
            )
        if all(isinstance(r, Mapping) for r in value):
            return pd.DataFrame.from_records(value)
        if all(isinstance(r, str) for r in value):
            return pd.DataFrame({"text": value})
        return pd.DataFrame(value)
    except InvalidInputError:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{key} is not a table: {' '.join(str(exc).split())[:200]}", field=key, fix=FIX
        ) from None

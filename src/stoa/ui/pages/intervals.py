"""Intervals drawn as bars: the A/B report's lifts and the agreement panel's kappa and
rho share one drawing, a track with zero in the middle (``m.interval_bar``)."""

from __future__ import annotations

import math
from typing import Any


def interval_bar(
    estimate: float | None,
    low: float | None,
    high: float | None,
    scale: float,
    *,
    verdict: str,
    mark: float | None = None,
) -> dict[str, Any] | None:
    """Positions, in percent of a track spanning [-scale, scale] with zero in the middle,
    of an interval and its estimate; ends beyond the track are clipped and flagged."""
    if estimate is None or low is None or high is None or scale <= 0:
        return None

    def at(x: float) -> float:
        return round(min(max((x / scale + 1) * 50, 0.0), 100.0), 3)

    left, right = at(low), at(high)
    return {"left": left, "width": round(max(right - left, 0.4), 3), "point": at(estimate),
            "verdict": verdict, "mark": None if mark is None else at(mark),
            "clip_low": low < -scale, "clip_high": high > scale}  # fmt: skip


def symmetric_scale(values: list[float | None], floor: float = 0.01, cap: float = 10.0) -> float:
    """The half-width of a track that shows every finite value, rounded up to a
    readable step; at least ``floor`` so a tiny interval is not drawn across the track,
    and at most ``cap`` so one huge interval does not squash the others (it is clipped)."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    top = min(max([floor, *finite]), cap)
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0):
        if top <= step:
            return step
    return cap

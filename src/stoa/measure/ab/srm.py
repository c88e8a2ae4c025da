"""Sample-ratio mismatch: are the arms' unit counts what the configured weights say?

A mismatch means assignment or logging is broken (a variant that crashes before it
logs, a bot filter that hits one arm), and then every other number is biased; so a
flagged SRM blocks the decision. The threshold is strict (p < 0.001) because the
check runs on every report and large experiments make tiny skews significant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import special

from stoa.measure.ab._json import json_safe

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmCheck:
    p_value: float | None
    chi2: float | None
    flagged: bool
    observed: dict[str, int]
    expected: dict[str, float]
    threshold: float = SRM_THRESHOLD

    def to_dict(self) -> dict[str, object]:
        return json_safe(self)


def check_srm(
    units: Mapping[str, int], weights: Mapping[str, float], threshold: float = SRM_THRESHOLD
) -> SrmCheck:
    """Pearson's chi-squared of ``units`` against ``weights`` (any scale; a variant
    with weight 0 must get no units). Weights are assumed validated by the caller."""
    names = list(units)
    observed = np.array([units[v] for v in names], float)
    w = np.array([weights[v] for v in names], float)
    total = observed.sum()
    expected = total * w / w.sum()
    exp_map = {v: float(e) for v, e in zip(names, expected, strict=True)}
    obs_map = {v: int(o) for v, o in zip(names, observed, strict=True)}
    if total == 0:
        return SrmCheck(None, None, False, obs_map, exp_map, threshold)
    if np.any((w == 0) & (observed > 0)):
        return SrmCheck(0.0, float("inf"), True, obs_map, exp_map, threshold)
    live = w > 0
    chi2 = float((((observed - expected) ** 2)[live] / expected[live]).sum())
    dof = int(live.sum()) - 1
    p = float(special.chdtrc(dof, chi2)) if dof > 0 else 1.0
    return SrmCheck(p, chi2, p < threshold, obs_map, exp_map, threshold)

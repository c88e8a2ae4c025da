"""What the demo's scale step reads from one /metrics scrape through Ray Serve's proxy."""

from __future__ import annotations

import pytest

from stoa.demo.scaling import counted_requests
from stoa.demo.traffic import ENDPOINT

SCRAPE = f"""# HELP stoa_requests_total Data-plane requests answered.
# TYPE stoa_requests_total counter
stoa_requests_total{{endpoint="{ENDPOINT}",variant="a",status="ok"}} 31.0
stoa_requests_total{{endpoint="{ENDPOINT}",variant="b",status="error"}} 2.0
stoa_requests_total{{endpoint="other",variant="a",status="ok"}} 7.0
# HELP stoa_replicas_reporting Replicas whose counts this scrape adds up.
# TYPE stoa_replicas_reporting gauge
stoa_replicas_reporting 2.0
"""


def test_the_demo_endpoints_requests_are_counted_over_every_status() -> None:
    assert counted_requests(SCRAPE) == (33, 2)
    assert counted_requests("") == (0, 0)


def test_an_answer_that_is_not_prometheus_text_is_named_not_repeated() -> None:
    secret = "<html>token=abc123 {broken"
    with pytest.raises(RuntimeError) as caught:
        counted_requests(f"stoa_requests_total{secret}\n")
    assert str(caught.value) == "the /metrics answer is not Prometheus text"
    assert "abc123" not in str(caught.value)

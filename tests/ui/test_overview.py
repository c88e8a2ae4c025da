"""The overview page: counts, what needs attention, recent activity."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("ui")


def test_overview_counts_and_links_everything(visitor, stoa) -> None:
    admin = visitor("admin")
    page = admin.visit("/ui", "overview")
    text = page.locator("main").inner_text()
    assert "Pending review" in text and stoa.refs["pending"] in text
    assert stoa.refs["blocked"] in text
    assert "train-broken" in text, "a failed run needs attention"
    assert "alias" in text and "champion" in text, "alias moves are recent activity"
    assert "handbook" in text
    page.click(f"text={stoa.refs['pending']}")
    assert "/ui/models/research-model/1" in page.url


def test_a_reader_sees_no_review_link(visitor) -> None:
    reader = visitor("read")
    page = reader.visit("/ui", "overview-reader")
    assert page.locator('nav >> text="Review"').count() == 0  # exactly: not "Review queues"
    assert page.locator('nav >> text="Review queues"').count() == 1
    assert page.locator("text=Review them").count() == 0

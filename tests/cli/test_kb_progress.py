"""The counting progress bar (kb ingest, batch score): counts, elapsed time and an
estimate of what is left."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from stoa.cli import output


def test_the_bar_shows_documents_done_of_total_and_an_eta(monkeypatch):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    monkeypatch.setattr(output, "notes", console)
    with output.counting_progress(True, "ingesting", "documents") as advance:
        assert advance is not None
        advance(1, 40, "file:///docs/a.md")
        time.sleep(0.3)  # a rate to estimate from
        advance(20, 40, "file:///docs/b.md")
    shown = out.getvalue()  # the last frame is drawn when the bar stops
    assert "20/40 documents" in shown and "b.md" in shown
    assert re.search(r"eta \d+:\d\d:\d\d", shown)  # an estimate, not "-:--:--"


def test_no_bar_when_stderr_is_not_a_terminal():
    with output.counting_progress(False, "ingesting", "documents") as advance:
        assert advance is None

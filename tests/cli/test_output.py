from stoa.cli import output


def test_storing_progress_only_for_large_artifacts(tmp_path, monkeypatch):
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 100)
    with output.storing_progress(small) as progress:
        assert progress is None
    monkeypatch.setattr(output, "PROGRESS_MIN_BYTES", 50)
    with output.storing_progress(small) as progress:
        assert progress is not None
        progress(100)  # advancing the bar must not fail


def test_when_shows_every_kind_of_time_as_iso_8601_with_its_utc_offset():
    from datetime import UTC, datetime, timedelta, timezone

    expected = "2026-12-02 15:04:05+00:00"
    moment = datetime(2026, 12, 2, 15, 4, 5, 123456, tzinfo=UTC)
    assert output.when(moment) == expected
    assert output.when(moment.replace(tzinfo=None)) == expected  # naive: stored as UTC
    assert output.when(moment.astimezone(timezone(timedelta(hours=2)))) == expected
    assert output.when("2026-12-02T15:04:05.123456") == expected  # SQLite's ISO text
    assert output.when("2026-12-02T15:04:05Z") == expected
    assert output.when(int(moment.timestamp() * 1000)) == expected  # metric points: ms
    assert output.when(None) == ""

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

"""Adaptive batching: concurrent callers share calls, a bad row fails only its caller,
a lone caller is not kept waiting, and a real model answers the same batched or not."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from stoa.core.errors import InvalidInputError, OverloadedError, TimedOutError
from stoa.serve.batching import Batcher, BatchingModel, BatchResultError


class Recorder:
    """A batched function that doubles numbers, records its calls and refuses 'bad'."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[Any]) -> list[Any]:
        with self.lock:
            self.calls.append(list(items))
        if "bad" in items:
            raise KeyError("bad is not a number")
        return [x * 2 for x in items]


def at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for i < n from n threads released together; results or exceptions."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        barrier.wait()
        try:
            return call(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_concurrent_callers_share_calls_and_each_gets_its_own_result(recorder) -> None:
    batcher = Batcher(recorder, max_batch_size=32, max_wait_ms=200, name="double")
    try:
        results = at_once(32, lambda i: batcher.submit(i, timeout_s=30))
    finally:
        batcher.close()
    assert results == [2 * i for i in range(32)]
    assert len(recorder.calls) < 32
    assert sorted(x for call in recorder.calls for x in call) == list(range(32))
    assert batcher.stats.items == 32
    assert batcher.stats.batches == len(recorder.calls)
    assert batcher.stats.largest == max(map(len, recorder.calls)) > 1


def test_a_batch_never_exceeds_its_size(recorder) -> None:
    batcher = Batcher(recorder, max_batch_size=4, max_wait_ms=200)
    try:
        results = at_once(16, lambda i: batcher.submit(i, timeout_s=30))
    finally:
        batcher.close()
    assert results == [2 * i for i in range(16)]
    assert max(map(len, recorder.calls)) <= 4


def test_a_failing_row_fails_only_its_own_caller(recorder) -> None:
    batcher = Batcher(recorder, max_batch_size=8, max_wait_ms=5_000)
    items = [0, 1, 2, "bad", 4, 5, 6, 7]
    try:
        results = at_once(8, lambda i: batcher.submit(items[i], timeout_s=30))
    finally:
        batcher.close()
    assert isinstance(results[3], KeyError)  # the original type, not a wrapper
    assert [r for i, r in enumerate(results) if i != 3] == [0, 2, 4, 8, 10, 12, 14]
    assert batcher.stats.retried == 1
    assert len(recorder.calls[0]) == 8  # it was one batch that failed, then split


def test_a_wrong_number_of_results_fails_every_caller_clearly() -> None:
    batcher = Batcher(lambda items: items[:-1], max_batch_size=4, max_wait_ms=5_000, name="lossy")
    alone = Batcher(lambda items: 7, max_batch_size=4, max_wait_ms=0)
    try:
        results = at_once(4, lambda i: batcher.submit(i, timeout_s=30))
        with pytest.raises(
            BatchResultError, match="returned a 'int', not a sequence, for a batch of 1"
        ):
            alone.submit(9, timeout_s=30)
    finally:
        batcher.close()
        alone.close()
    assert all(isinstance(r, BatchResultError) for r in results)
    assert "'lossy' returned 3 results for a batch of 4" in results[0].message


def test_a_lone_request_waits_the_window_and_no_longer(recorder) -> None:
    batcher = Batcher(recorder, max_batch_size=32, max_wait_ms=100)
    try:
        started = time.monotonic()
        assert batcher.submit(21, timeout_s=30) == 42
        waited = time.monotonic() - started
    finally:
        batcher.close()
    assert 0.09 <= waited < 1.0  # it held the batch open for the window, then ran it alone
    assert recorder.calls == [[21]]


def test_without_a_window_a_lone_request_runs_at_once(recorder) -> None:
    batcher = Batcher(recorder, max_batch_size=32, max_wait_ms=0)
    try:
        started = time.monotonic()
        assert batcher.submit(5, timeout_s=30) == 10
        assert time.monotonic() - started < 1.0
    finally:
        batcher.close()


def test_a_caller_that_times_out_is_left_out_of_later_batches(recorder) -> None:
    release = threading.Event()

    def slow(items: list[Any]) -> list[Any]:
        release.wait(30)
        return recorder(items)

    batcher = Batcher(slow, max_batch_size=1, max_wait_ms=0)
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(batcher.submit, 1, 30)
            while batcher.stats.batches == 0:  # the worker is now inside slow([1])
                time.sleep(0.01)
            with pytest.raises(TimedOutError) as caught:
                batcher.submit(2, timeout_s=0.2)
            assert caught.value.field == "timeout_s"
            release.set()
            assert first.result(30) == 2
        assert batcher.submit(3, timeout_s=30) == 6
    finally:
        release.set()
        batcher.close()
    assert recorder.calls == [[1], [3]]


def test_close_finishes_queued_work_then_refuses_more(recorder) -> None:
    release = threading.Event()

    def slow(items: list[Any]) -> list[Any]:
        release.wait(30)
        return recorder(items)

    batcher = Batcher(slow, max_batch_size=1, max_wait_ms=0)
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(batcher.submit, 1, 30)
        while batcher.stats.batches == 0:  # the worker is inside slow([1])
            time.sleep(0.01)
        queued = pool.submit(batcher.submit, 2, 30)
        while batcher._queue.qsize() == 0:  # 2 waits behind it
            time.sleep(0.01)
        closing = pool.submit(batcher.close)
        with pytest.raises(OverloadedError, match="closed"):
            while True:  # close() has marked the batcher closed before it waits
                batcher.submit(3)
                time.sleep(0.01)
        release.set()
        assert (running.result(30), queued.result(30)) == (2, 4)
        closing.result(30)
    assert recorder.calls == [[1], [2]]
    batcher.close()  # closing twice is harmless


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 2.5}, "max_batch_size"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"max_wait_ms": float("inf")}, "max_wait_ms"),
    ],
)
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Batcher(lambda items: items, **options)
    assert caught.value.field == field


# -- a real model ---------------------------------------------------------------------

TEXTS = [
    "my invoice is wrong",
    "refund my last payment",
    "I was charged twice",
    "the app crashes on start",
    "cannot log in after the update",
    "error when I open settings",
    "how do I change my plan",
    "where can I download my receipts",
]
LABELS = ["billing", "billing", "billing", "bug", "bug", "bug", "question", "question"]
QUERIES = [f"{text} again, please help {i}" for i, text in enumerate(TEXTS * 2)]


@pytest.fixture(scope="module")
def pipeline():
    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500)).fit(TEXTS, LABELS)


def test_batched_probabilities_equal_unbatched_ones(pipeline) -> None:
    model = BatchingModel(pipeline, max_batch_size=32, max_wait_ms=200)
    try:
        batched = at_once(len(QUERIES), lambda i: model.predict_proba([QUERIES[i]]))
        labels = at_once(len(QUERIES), lambda i: model.predict([QUERIES[i]]))
        stats = model.batch_stats["predict_proba"]
        assert stats.items == len(QUERIES) and stats.batches < len(QUERIES)
        for query, proba, label in zip(QUERIES, batched, labels, strict=True):
            alone = pipeline.predict_proba([query])
            assert proba.shape == alone.shape == (1, 3)
            np.testing.assert_allclose(proba, alone, rtol=0, atol=1e-12)
            assert label.shape == (1,) and label[0] == pipeline.predict([query])[0]
        # Many rows go straight through; attributes pass through.
        np.testing.assert_array_equal(model.predict_proba(QUERIES), pipeline.predict_proba(QUERIES))
        assert list(model.classes_) == ["billing", "bug", "question"]
        assert model.model is pipeline
        assert model.batch_stats["predict_proba"].items == len(QUERIES)
    finally:
        model.close()


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_rows_as_dicts_and_one_row_frames_are_batched_too() -> None:
    frame = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    fitted = LogisticRegression().fit(frame, [0, 0, 1, 1])
    model = BatchingModel(fitted, max_batch_size=8, max_wait_ms=200)
    rows = [{"x1": 0.5 * i, "x2": float(i % 2)} for i in range(8)]
    try:
        as_dicts = at_once(8, lambda i: model.predict_proba([rows[i]]))
        as_frames = at_once(8, lambda i: model.predict_proba(pd.DataFrame([rows[i]])))
        as_arrays = at_once(8, lambda i: model.predict(np.array([[rows[i]["x1"], rows[i]["x2"]]])))
    finally:
        model.close()
    expected = fitted.predict_proba(pd.DataFrame(rows))
    np.testing.assert_allclose(np.vstack(as_dicts), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.vstack(as_frames), expected, rtol=0, atol=1e-12)
    assert np.concatenate(as_arrays).tolist() == fitted.predict(pd.DataFrame(rows)).tolist()


def test_a_model_without_predict_proba_does_not_grow_one() -> None:
    svm = LinearSVC().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    model = BatchingModel(svm, max_batch_size=4, max_wait_ms=0)
    try:
        assert not hasattr(model, "predict_proba")
        assert model.predict([[3.0]]).tolist() == [1]
        assert model.decision_function([[0.0]]).shape == (1,)
    finally:
        model.close()

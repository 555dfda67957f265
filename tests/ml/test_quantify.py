"""Corrected shares against hand-computed cases, intervals, bounds, seeds, stored forms."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import quantify as q
from ml.data import load_images
from ml.errors import DataError
from ml.evaluate import evaluate_classifier
from ml.labels import STATES
from ml.predict import Classifier

TWO = ("Engaged", "Bored")


def calibration(confusion, posterior_sums=None, states=TWO) -> q.Calibration:
    """A calibration whose posteriors, unless given, are the crisp predictions themselves."""
    return q.Calibration(states, confusion, confusion if posterior_sums is None else posterior_sums)


def one_hot(predicted: list[str], states=TWO) -> np.ndarray:
    return np.eye(len(states))[[states.index(s) for s in predicted]]


# Engaged faces are read as Engaged 80 % of the time, Bored faces as Engaged 30 %.
LEAKY = [[80, 20], [30, 70]]


def test_acc_undoes_a_known_confusion():
    # True shares 50/50 are seen as 0.8 * 0.5 + 0.3 * 0.5 = 55 % Engaged: 11 of 20 faces.
    predicted = ["Engaged"] * 11 + ["Bored"] * 9
    result = q.quantify(one_hot(predicted), predicted, calibration(LEAKY), "acc")
    assert result.raw == pytest.approx([0.55, 0.45])
    assert result.shares == pytest.approx([0.5, 0.5])


def test_parts_are_corrected_each_with_their_own_calibration_and_weighted_by_faces():
    # 20 faces of a leaky model (true 50/50, as above) and 5 of a perfect one, all Engaged.
    leaky = ["Engaged"] * 11 + ["Bored"] * 9
    perfect = ["Engaged"] * 5
    combined, (first, second) = q.quantify_parts(
        [(one_hot(leaky), leaky, calibration(LEAKY)),
         (one_hot(perfect), perfect, calibration([[50, 0], [0, 50]]))], "acc",
    )  # fmt: skip
    assert first.shares == pytest.approx([0.5, 0.5]) and second.shares == pytest.approx([1, 0])
    assert combined.faces == 25 and combined.raw == pytest.approx([16 / 25, 9 / 25])
    assert combined.shares == pytest.approx([0.8 * 0.5 + 0.2 * 1.0, 0.8 * 0.5])
    for share, (low, high) in zip(combined.shares, combined.intervals, strict=True):
        assert low <= share <= high
    # One part is exactly quantify(): the same numbers, seed for seed.
    alone = q.quantify(one_hot(leaky), leaky, calibration(LEAKY), "acc", seed=3)
    again, _ = q.quantify_parts([(one_hot(leaky), leaky, calibration(LEAKY))], "acc", seed=3)
    assert again.shares == pytest.approx(alone.shares)
    assert again.intervals == pytest.approx(alone.intervals)
    with pytest.raises(DataError, match="different states"):
        other = calibration([[5, 0], [0, 5]], states=("Angry", "Neutral"))
        angry = (one_hot(["Angry"], ("Angry", "Neutral")), ["Angry"], other)
        q.quantify_parts([(one_hot(leaky), leaky, calibration(LEAKY)), angry])


def test_acc_clips_an_impossible_count_into_the_simplex():
    # 20 % Engaged is below what even an all-Bored class shows (30 %): solved p = -0.2 -> 0.
    predicted = ["Engaged"] * 2 + ["Bored"] * 8
    result = q.quantify(one_hot(predicted), predicted, calibration(LEAKY), "acc")
    assert result.shares == pytest.approx([0.0, 1.0])


def test_pacc_undoes_a_known_soft_confusion():
    # Mean P(Engaged) is 0.7 for Engaged faces and 0.4 for Bored ones; a mean of 0.55 is 50/50.
    soft = calibration(LEAKY, posterior_sums=[[70, 30], [40, 60]])
    posteriors = np.array([[0.9, 0.1], [0.2, 0.8]])
    result = q.quantify(posteriors, ["Engaged", "Bored"], soft, "pacc")
    assert result.shares == pytest.approx([0.5, 0.5])


def test_em_reaches_the_hand_solved_likelihood_maximum():
    # Prior 50/50 (mean calibration posterior). The likelihood of shares (a, 1 - a) for faces
    # (0.9, 0.1) and (0.3, 0.7) is (0.1 + 0.8 a)(0.7 - 0.4 a), maximal at a = 0.8125.
    prior = calibration([[30, 20], [20, 30]])
    posteriors = np.array([[0.9, 0.1], [0.3, 0.7]])
    result = q.quantify(posteriors, ["Engaged", "Bored"], prior, "em")
    assert result.shares == pytest.approx([0.8125, 0.1875], abs=2e-3)


@pytest.mark.parametrize("method", q.METHODS)
def test_a_perfect_classifier_leaves_the_shares_unchanged(method):
    perfect = q.Calibration(STATES, np.diag([50, 60, 70, 80]), np.diag([50.0, 60, 70, 80]))
    predicted = ["Angry"] * 3 + ["Engaged"] * 5 + ["Bored"] * 2
    result = q.quantify(one_hot(predicted, STATES), predicted, perfect, method)
    assert result.shares == pytest.approx([0.3, 0.0, 0.5, 0.2], abs=1e-6)
    assert result.raw == pytest.approx(result.shares, abs=1e-6)


def random_case(seed: int, faces: int = 25):
    rng = np.random.default_rng(seed)
    confusion = rng.integers(1, 60, (4, 4)) + np.diag(rng.integers(50, 200, 4))
    soft = confusion * rng.uniform(0.5, 1.5, (4, 4))
    soft *= confusion.sum(1, keepdims=True) / soft.sum(1, keepdims=True)
    posteriors = rng.dirichlet(np.ones(4) * 0.7, faces)
    predicted = [STATES[i] for i in posteriors.argmax(1)]
    return posteriors, predicted, q.Calibration(STATES, confusion, soft)


@pytest.mark.parametrize("method", q.METHODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimates_are_shares_and_intervals_hold_them(method, seed):
    posteriors, predicted, cal = random_case(seed)
    result = q.quantify(posteriors, predicted, cal, method, resamples=100)
    assert ((result.shares >= 0) & (result.shares <= 1)).all()
    assert result.shares.sum() == pytest.approx(1.0)
    low, high = result.intervals.T
    assert ((low >= 0) & (high <= 1) & (low <= result.shares) & (result.shares <= high)).all()
    assert (high > low).any()
    assert low[2] <= result.engagement_index <= high[2]
    assert result.engagement_interval == (low[2], high[2])


def test_a_seed_fixes_the_intervals():
    posteriors, predicted, cal = random_case(3)
    first = q.quantify(posteriors, predicted, cal, "pacc", resamples=200, seed=7)
    again = q.quantify(posteriors, predicted, cal, "pacc", resamples=200, seed=7)
    other = q.quantify(posteriors, predicted, cal, "pacc", resamples=200, seed=8)
    assert np.array_equal(first.intervals, again.intervals)
    assert not np.array_equal(first.intervals, other.intervals)
    assert np.array_equal(first.shares, other.shares)


def test_calibration_uncertainty_widens_the_intervals():
    # The same session with error rates measured on 10x fewer faces gets wider intervals.
    posteriors, predicted, cal = random_case(4, faces=200)
    few = np.maximum(cal.confusion // 10, 1)
    width = {
        scale: np.ptp(
            q.quantify(
                posteriors, predicted, q.Calibration(STATES, few * scale, few * scale), "acc"
            ).intervals,
            axis=1,
        ).mean()
        for scale in (1, 10)
    }
    assert width[1] > 1.2 * width[10]


def test_calibration_from_faces_counts_hand_made_faces():
    truth = ["Engaged", "Engaged", "Bored"]
    predicted = ["Engaged", "Bored", "Bored"]
    posteriors = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    cal = q.calibration_from_faces(truth, posteriors, predicted, TWO)
    assert cal.confusion.tolist() == [[1, 1], [0, 1]]
    assert cal.posterior_sums == pytest.approx(np.array([[1.3, 0.7], [0.2, 0.8]]))
    assert cal.faces == 3


def test_json_forms_round_trip():
    posteriors, predicted, cal = random_case(5)
    stored = json.loads(json.dumps(cal.to_json()))
    back = q.Calibration.from_json(stored)
    assert back.states == STATES and np.array_equal(back.confusion, cal.confusion)
    assert back.posterior_sums == pytest.approx(cal.posterior_sums, abs=1e-6)
    result = q.quantify(posteriors, predicted, cal, resamples=50)
    data = json.loads(json.dumps(result.to_json(), sort_keys=True))  # as jsonb may reorder
    assert data["method"] == q.DEFAULT_METHOD and data["faces"] == 25
    assert sum(data["shares"].values()) == pytest.approx(1.0, abs=1e-3)
    read = q.Quantification.from_json(data)
    assert read.states == STATES and read.shares == pytest.approx(result.shares, abs=1e-4)
    assert read.engagement_interval == pytest.approx(result.engagement_interval, abs=1e-4)


@pytest.mark.parametrize(
    "call",
    [
        lambda cal: q.quantify(np.zeros((0, 2)), [], cal),
        lambda cal: q.quantify(one_hot(["Engaged"]), ["Happy"], cal),
        lambda cal: q.quantify(one_hot(["Engaged"]), ["Engaged", "Bored"], cal),
        lambda cal: q.quantify(np.array([[0.5, 0.2]]), ["Engaged"], cal),
        lambda cal: q.quantify(np.ones((1, 3)) / 3, ["Engaged"], cal),
        lambda cal: q.quantify(one_hot(["Engaged"]), ["Engaged"], cal, "median"),
        lambda cal: q.Calibration(TWO, [[1, 0], [0, 0]], [[1, 0], [0, 0]]),
        lambda cal: q.Calibration(TWO, [[1, 0], [0, 1]], [[0.5, 0], [0, 1]]),
        lambda cal: q.Calibration(TWO, [[1, -1], [0, 1]], [[1, -1], [0, 1]]),
        lambda cal: q.Calibration.from_json({"states": ["A", "B"], "confusion": [[1]]}),
        lambda cal: q.Quantification.from_json({"method": "pacc"}),
    ],
)
def test_bad_input_gets_a_clear_error(call):
    with pytest.raises(DataError):
        call(calibration(LEAKY))


def summary(faces: int, low: float, high: float) -> q.Quantification:
    engaged = (low + high) / 2
    return q.Quantification(
        "pacc",
        STATES,
        faces,
        raw=np.array([0.1, 0.1, engaged, 0.8 - engaged]),
        shares=np.array([0.1, 0.1, engaged, 0.8 - engaged]),
        intervals=np.array([[0, 0.2], [0, 0.2], [low, high], [0.0, 1.0]]),
        level=0.9,
    )


def test_a_change_is_marked_only_when_intervals_and_face_counts_allow_it():
    many = q.MIN_FACES
    assert q.change(summary(many, 0.2, 0.4), summary(many, 0.5, 0.7)) == "up"
    assert q.change(summary(many, 0.5, 0.7), summary(many, 0.2, 0.4)) == "down"
    assert q.change(summary(many, 0.2, 0.5), summary(many, 0.45, 0.7)) is None
    assert q.change(summary(many - 1, 0.2, 0.4), summary(many, 0.5, 0.7)) is None
    assert q.change(summary(many, 0.2, 0.4), summary(many, 0.25, 0.3), state="Angry") is None
    assert not q.enough_faces(many - 1) and q.enough_faces(many)


def test_state_posteriors_add_classes_of_one_state():
    classes = ["angry", "disgust", "happy"]
    mapping = {"angry": "Angry", "disgust": "Angry", "happy": "Engaged"}
    merged = q.state_posteriors(np.array([[0.2, 0.1, 0.7]]), classes, mapping, STATES)
    assert merged == pytest.approx(np.array([[0.3, 0.0, 0.7, 0.0]]))
    with pytest.raises(DataError):
        q.state_posteriors(np.array([[0.2, 0.1, 0.7]]), classes, mapping, ("Angry", "Bored"))


def test_measure_calibration_matches_the_state_evaluation_of_real_faces(data_dir):
    """The shipped model on 20 real val faces per class: counts agree with `evaluate`."""
    val = load_images(data_dir / "fer2013" / "val")
    per_class = np.concatenate([np.flatnonzero(val.labels == k)[:20] for k in range(7)])
    data = val.subset(per_class)
    classifier = Classifier.load("default", device="cpu")
    cal = q.measure_calibration(classifier, data)
    metrics = evaluate_classifier(classifier, data, map_states=True)
    assert list(cal.states) == metrics["classes"] == list(STATES)
    assert cal.confusion.tolist() == metrics["confusion_matrix"]
    assert cal.posterior_sums.sum(1) == pytest.approx(cal.confusion.sum(1), rel=1e-4)
    assert q.Calibration.from_json(json.loads(json.dumps(cal.to_json()))).faces == 140


def test_reading_stored_numbers_loads_neither_quapy_nor_torch():
    """Pages read stored quantifications; only `quantify` itself loads QuaPy (and with it torch)."""
    stored = summary(q.MIN_FACES, 0.2, 0.4).to_json()
    code = (
        "import json, sys; from ml import quantify as q; "
        f"a = q.Quantification.from_json(json.loads({json.dumps(json.dumps(stored))})); "
        "q.change(a, a); q.Calibration.from_json(q.Calibration(('A', 'B'), [[1, 0], [0, 1]], "
        "[[1.0, 0], [0, 1.0]]).to_json()); print(sorted({'quapy', 'torch'} & set(sys.modules)))"
    )
    assert _heavy_modules_after(code) == "[]"


def test_the_numpy_adjustment_is_quapys_solve_then_clip():
    """_adjust is QuaPy's exact-cc inversion and clip, written in numpy (no torch to load)."""
    import quapy.functional as qpf
    from quapy.method.aggregative import ACC

    rng = np.random.default_rng(0)
    cases = [rng.integers(1, 100, (4, 4)) for _ in range(200)] + [np.ones((4, 4))]  # + singular
    for counts in cases:
        observed = rng.dirichlet(np.ones(4))
        rates = (counts / counts.sum(1, keepdims=True)).T
        solved = ACC.solve_adjustment(rates, observed, method="inversion", solver="exact-cc")
        expected = qpf.normalize_prevalence(solved, method="clip")
        np.testing.assert_allclose(q._adjust(counts.astype(float), observed), expected)


def test_pooling_pacc_parts_loads_neither_quapy_nor_torch():
    """A page pools activities across sessions with quantify_parts (PACC): numpy only."""
    code = (
        "import sys, numpy as np; from ml import quantify as q; "
        "c = q.Calibration(('A', 'B'), [[8, 2], [3, 7]], [[8.0, 2], [3, 7.0]]); "
        "p = np.array([[0.9, 0.1], [0.2, 0.8]]); "
        "q.quantify_parts([(p, ['A', 'B'], c), (p, ['A', 'A'], c)], resamples=20); "
        "print(sorted({'quapy', 'torch'} & set(sys.modules)))"
    )
    assert _heavy_modules_after(code) == "[]"


def _heavy_modules_after(code: str) -> str:
    """What of QuaPy and torch a fresh interpreter holds after running `code` (it prints it)."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()

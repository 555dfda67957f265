"""Class-level state shares corrected for the classifier's known errors, with intervals.

Counting per-face labels ("classify and count") is biased whenever the classifier confuses
states: if Bored faces are often read as Neutral, the Neutral count holds part of the Bored
share. Quantification methods correct the count with the model's error rates, measured once on
labelled validation faces (a `Calibration`, stored with the model version), and need nothing
else at serving time than each face's state probabilities and predicted state.

Methods (the numeric cores come from QuaPy, Moreo et al.):
- "cc": classify and count, the plain share of predicted states ("raw").
- "acc": adjusted classify and count: solves observed = rates @ true for the true shares, with
  rates[i, j] = P(predicted i | true j) from the calibration's confusion counts.
- "pacc": the same with average state probabilities instead of counts.
- "em": prior adjustment by expectation-maximisation (Saerens, Latinne & Decaestecker 2002).

Intervals are percentile bootstrap intervals: each replicate resamples the session's faces and
redraws the calibration (each true state's row from a Dirichlet on its counts), so they carry
both the session's sampling noise and the uncertainty of the measured error rates.

Where to run it: importing QuaPy loads torch, scikit-learn, pandas and matplotlib (about 6 s,
and the web process must stay torch-free), so only EM loads it, on first use; CC, ACC and PACC
(the default) need numpy only. Sessions are quantified where torch already lives (the inference
worker, after a session's photos are analysed) and store `Quantification.to_json()`; reading it
back (`from_json`, `change`, `enough_faces`) and `Calibration` need numpy only, and so do pools
of PACC parts across sessions that a page asks for (activities over a date range).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ml.errors import DataError
from ml.labels import ENGAGED, states_of

METHODS = ("cc", "acc", "pacc", "em")
# benchmarks/quantify_eval.py on FER2013 val: the most accurate method whose 90 % intervals
# hold the true share 85-95 % of the time. EM's shares are closer still, but its intervals miss
# states absent from a session (EM never estimates 0), so a teacher would be misled there.
DEFAULT_METHOD = "pacc"
LEVEL = 0.90
# With 500 replicates a bound moves by about 1 point (standard deviation) from seed to seed; a
# PACC session takes 50-120 ms on the shared 2-core machine (EM 0.3-0.7 s).
RESAMPLES = 500
# The smallest session size at which every simulated session's four 90 % intervals lie within
# +-20 points (benchmarks/quantify_eval.py --sweep-sizes, default model v4, PACC: 3 % of
# sessions at 20 faces, 50 % at 40, 82 % at 60, 100 % at 80; MODEL_CARD.md, "Corrected shares").
# The engagement share alone is within +-18 points from 20 faces.
MIN_FACES = 80
# Probabilities are stored rounded; rows further than this from summing to 1 are not posteriors.
SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Calibration:
    """A model's state-level errors on labelled validation faces; what a model version carries.

    `confusion[i, j]`: faces of true state i predicted as state j. `posterior_sums[i, j]`: the
    sum, over faces of true state i, of their probability of state j (rows sum to the same
    totals as `confusion`).
    """

    states: tuple[str, ...]
    confusion: np.ndarray
    posterior_sums: np.ndarray

    def __post_init__(self):
        n = len(self.states)
        confusion = np.asarray(self.confusion, dtype=np.int64)
        sums = np.asarray(self.posterior_sums, dtype=np.float64)
        if n < 2 or len(set(self.states)) != n:
            raise DataError(f"a calibration needs two or more distinct states, got {self.states}")
        if confusion.shape != (n, n) or sums.shape != (n, n):
            raise DataError(f"calibration matrices must be {n}x{n} for the states {self.states}")
        if (confusion < 0).any() or not np.isfinite(sums).all() or (sums < 0).any():
            raise DataError("calibration counts must be finite and not negative")
        totals = confusion.sum(1)
        missing = [s for s, t in zip(self.states, totals, strict=True) if t == 0]
        if missing:
            raise DataError(f"the calibration has no faces of the states {missing}")
        if not np.allclose(sums.sum(1), totals, rtol=SUM_TOLERANCE):
            raise DataError("calibration posterior sums disagree with the face counts")
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "confusion", confusion)
        object.__setattr__(self, "posterior_sums", sums)

    @property
    def faces(self) -> int:
        return int(self.confusion.sum())

    def to_json(self) -> dict:
        """A plain dict of lists (JSON-able) that `from_json` reads back."""
        return {
            "states": list(self.states),
            "confusion": self.confusion.tolist(),
            "posterior_sums": np.round(self.posterior_sums, 6).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Calibration":
        try:
            return cls(tuple(data["states"]), data["confusion"], data["posterior_sums"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a calibration ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class Quantification:
    """The state shares of one set of faces: raw, corrected by `method`, and their intervals."""

    method: str
    states: tuple[str, ...]
    faces: int
    raw: np.ndarray  # (S,) plain share of predicted states
    shares: np.ndarray  # (S,) corrected shares, in [0, 1], summing to 1
    intervals: np.ndarray  # (S, 2) lower and upper bound at `level`
    level: float

    @property
    def enough_faces(self) -> bool:
        return enough_faces(self.faces)

    @property
    def engagement_index(self) -> float:
        """The engagement index (the share of Engaged faces), corrected."""
        return float(self.shares[self.states.index(ENGAGED)])

    @property
    def engagement_interval(self) -> tuple[float, float]:
        low, high = self.intervals[self.states.index(ENGAGED)]
        return float(low), float(high)

    def to_json(self) -> dict:
        """Shares and bounds by state, rounded to 4 decimals; `from_json` reads it back.

        The state order travels as a list: JSON stores (PostgreSQL's jsonb) may reorder keys.
        """
        return {
            "method": self.method,
            "states": list(self.states),
            "faces": self.faces,
            "level": self.level,
            "enough_faces": self.enough_faces,
            "raw": _by_state(self.states, self.raw),
            "shares": _by_state(self.states, self.shares),
            "intervals": {
                s: [round(float(lo), 4), round(float(hi), 4)]
                for s, (lo, hi) in zip(self.states, self.intervals, strict=True)
            },
        }

    @classmethod
    def from_json(cls, data: dict) -> "Quantification":
        try:
            states = tuple(data["states"])
            return cls(
                method=data["method"],
                states=states,
                faces=int(data["faces"]),
                raw=np.asarray([data["raw"][s] for s in states], dtype=np.float64),
                shares=np.asarray([data["shares"][s] for s in states], dtype=np.float64),
                intervals=np.asarray([data["intervals"][s] for s in states], dtype=np.float64),
                level=float(data["level"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a quantification ({type(exc).__name__}: {exc})") from exc


def _by_state(states, values) -> dict[str, float]:
    return {s: round(float(v), 4) for s, v in zip(states, values, strict=True)}


# --- inputs ------------------------------------------------------------------------------------


def state_posteriors(
    probabilities: np.ndarray, classes: Sequence[str], state_mapping: dict[str, str], states
) -> np.ndarray:
    """Per-face state probabilities (N, S): each class's probability added to its state's."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise DataError(f"probabilities must be (faces, {len(classes)}), got {probabilities.shape}")
    index = {s: i for i, s in enumerate(states)}
    unknown = sorted({state_mapping.get(c, c) for c in classes} - index.keys())
    if unknown:
        raise DataError(f"classes map to states {unknown} that are not among {list(states)}")
    merge = np.zeros((len(classes), len(states)))
    for row, name in enumerate(classes):
        merge[row, index[state_mapping.get(name, name)]] = 1.0
    return probabilities @ merge


def calibration_from_faces(
    true_states: Sequence[str],
    posteriors: np.ndarray,
    predicted_states: Sequence[str],
    states: Sequence[str],
) -> Calibration:
    """The calibration of labelled faces: their true and predicted states and state posteriors."""
    states = tuple(states)
    posteriors = _check_posteriors(posteriors, len(states))
    truth = _state_index(true_states, states, "true")
    predicted = _state_index(predicted_states, states, "predicted")
    if not len(truth) == len(predicted) == len(posteriors):
        raise DataError(
            f"{len(truth)} true states, {len(predicted)} predictions, {len(posteriors)} posteriors"
        )
    n = len(states)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    sums = np.zeros((n, n))
    np.add.at(sums, truth, posteriors)
    return Calibration(states, confusion, sums)


def score_faces(classifier, data) -> tuple[list[str], np.ndarray, list[str]]:
    """True states, state posteriors (N, S) and predicted states of labelled faces.

    `data` is an ml.data.ImageSet labelled with the model's classes or with its states, as for
    evaluation; a face's predicted state is the state of its most likely class, as at serving.
    Posterior columns follow `states_of(classifier.state_mapping)`.
    """
    from ml.evaluate import predict_probabilities, true_states_for

    probabilities = predict_probabilities(classifier, data)
    predicted = [classifier.state_of(classifier.classes[i]) for i in probabilities.argmax(1)]
    posteriors = state_posteriors(
        probabilities,
        classifier.classes,
        classifier.state_mapping,
        states_of(classifier.state_mapping),
    )
    return true_states_for(classifier, data), posteriors, predicted


def measure_calibration(classifier, data) -> Calibration:
    """Score a Classifier on labelled validation data (see `score_faces`) into a Calibration."""
    return calibration_from_faces(
        *score_faces(classifier, data), states_of(classifier.state_mapping)
    )


def _check_posteriors(posteriors, n_states: int) -> np.ndarray:
    posteriors = np.asarray(posteriors, dtype=np.float64)
    if posteriors.ndim != 2 or posteriors.shape[1] != n_states:
        raise DataError(f"posteriors must be (faces, {n_states}), got {posteriors.shape}")
    if not np.isfinite(posteriors).all() or (posteriors < 0).any():
        raise DataError("posteriors must be finite and not negative")
    if not np.allclose(posteriors.sum(1), 1.0, atol=SUM_TOLERANCE):
        raise DataError("each face's state probabilities must sum to 1")
    return posteriors / posteriors.sum(1, keepdims=True)


def _state_index(names: Sequence[str], states: tuple[str, ...], what: str) -> np.ndarray:
    lookup = {s: i for i, s in enumerate(states)}
    unknown = sorted({str(n) for n in names} - lookup.keys())
    if unknown:
        raise DataError(f"{what} states {unknown} are not among {list(states)}")
    return np.asarray([lookup[str(n)] for n in names], dtype=np.int64)


# --- estimation --------------------------------------------------------------------------------


def quantify(
    posteriors: np.ndarray,
    predicted_states: Sequence[str],
    calibration: Calibration,
    method: str = DEFAULT_METHOD,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Quantification:
    """Raw and corrected state shares of a set of faces, with bootstrap intervals.

    `posteriors` (N, S) are the faces' state probabilities in `calibration.states` order (see
    `state_posteriors`), `predicted_states` their predicted state names. The same inputs and
    seed give the same numbers. Each interval is widened, where needed, to hold its estimate.
    """
    combined, _ = quantify_parts(
        [(posteriors, predicted_states, calibration)], method,
        level=level, resamples=resamples, seed=seed,
    )  # fmt: skip
    return combined


def quantify_parts(
    parts: Sequence[tuple[np.ndarray, Sequence[str], Calibration]],
    method: str = DEFAULT_METHOD,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[Quantification, list[Quantification]]:
    """The shares of faces classified by several models, each part corrected with its own
    model's calibration, and combined; also each part's own quantification.

    A part is (posteriors, predicted states, calibration), as `quantify` takes them; every
    calibration must have the same states. The combined shares are the parts' corrected shares
    weighted by their face counts (the faces of each model are a fixed part of the set). Its
    intervals come from a stratified bootstrap: each replicate resamples every part's faces
    and redraws its calibration, independently, and the replicate's combined share is the same
    counts-weighted sum; the percentiles of those sums are the interval. This is the variance of
    a weighted sum of independent estimates without assuming the estimates are normal (near 0
    or 1 they are not).
    """
    if method not in METHODS:
        raise DataError(f"unknown quantification method {method!r}; choose from {METHODS}")
    if not 0 < level < 1 or resamples < 1:
        raise DataError("level must lie in (0, 1) and resamples be positive")
    if not parts:
        raise DataError("no faces to quantify")
    states = parts[0][2].states
    if any(calibration.states != states for _, _, calibration in parts):
        raise DataError("the calibrations of the parts have different states")
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2
    each, sizes = [], []
    total_shares = np.zeros(len(states))
    total_replicates = np.zeros((resamples, len(states)))
    total_counts = np.zeros(len(states))
    for posteriors, predicted_states, calibration in parts:
        shares, replicates, predicted = _bootstrap(
            posteriors, predicted_states, calibration, method, resamples, rng
        )
        each.append(_summarize(method, states, shares, replicates, predicted, level, tail))
        sizes.append(len(predicted))
        total_shares += len(predicted) * shares
        total_replicates += len(predicted) * replicates
        total_counts += np.bincount(predicted, minlength=len(states))
    n = sum(sizes)
    shares, replicates = total_shares / n, total_replicates / n
    low, high = np.quantile(replicates, [tail, 1 - tail], axis=0)
    intervals = np.stack([np.minimum(low, shares), np.maximum(high, shares)], axis=1)
    combined = Quantification(method, states, n, total_counts / n, shares, intervals, level)
    return combined, each


def _bootstrap(posteriors, predicted_states, calibration, method, resamples, rng):
    """(corrected shares, (resamples, S) bootstrap replicates, predicted state indices)."""
    states = calibration.states
    posteriors = _check_posteriors(posteriors, len(states))
    predicted = _state_index(predicted_states, states, "predicted")
    if len(predicted) != len(posteriors):
        raise DataError(f"{len(predicted)} predicted states for {len(posteriors)} posteriors")
    if not len(predicted):
        raise DataError("no faces to quantify")
    shares = _estimate(
        method, posteriors, predicted, calibration.confusion, calibration.posterior_sums
    )
    replicates = np.empty((resamples, len(states)))
    totals = calibration.confusion.sum(1, keepdims=True)
    for b in range(resamples):
        faces = rng.integers(0, len(predicted), len(predicted))
        confusion = totals * _dirichlet_rows(calibration.confusion, rng)
        soft = totals * _dirichlet_rows(calibration.posterior_sums, rng)
        replicates[b] = _estimate(method, posteriors[faces], predicted[faces], confusion, soft)
    return shares, replicates, predicted


def _summarize(method, states, shares, replicates, predicted, level, tail) -> Quantification:
    low, high = np.quantile(replicates, [tail, 1 - tail], axis=0)
    intervals = np.stack([np.minimum(low, shares), np.maximum(high, shares)], axis=1)
    raw = np.bincount(predicted, minlength=len(states)) / len(predicted)
    return Quantification(method, states, len(predicted), raw, shares, intervals, level)


def _dirichlet_rows(counts: np.ndarray, rng) -> np.ndarray:
    """Each row redrawn from a Dirichlet with the row as parameters; zero cells stay zero."""
    draws = rng.standard_gamma(counts)
    return draws / draws.sum(1, keepdims=True)


def _estimate(method: str, posteriors, predicted, confusion, soft) -> np.ndarray:
    """Shares by `method`; `confusion` and `soft` (posterior sums) are (S, S), rows = true states.

    QuaPy is imported here, for EM only, on first use, not with this module (see the module
    docstring): CC, ACC and PACC need numpy only, so the web process can pool them.
    """
    n_states = posteriors.shape[1]
    if method == "em":
        from quapy.method.aggregative import EMQ

        # The calibration faces' mean posterior is the prior the probabilities reflect, so a
        # session mixed like the calibration set comes back unchanged.
        estimate, _ = EMQ.EM(soft.sum(0) / soft.sum(), posteriors)
        return estimate
    if method == "pacc":
        return _adjust(soft, posteriors.mean(0))
    observed = np.bincount(predicted, minlength=n_states) / len(predicted)
    return observed if method == "cc" else _adjust(confusion, observed)


def _adjust(counts: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """True shares p with observed = rates @ p, rates[i, j] = P(predicted i | true j).

    Solved exactly and clipped into the simplex rather than by QuaPy's default constrained least
    squares: as accurate on our val sessions (mean absolute error within 0.001) and about 200
    times faster, which the bootstrap needs. A singular matrix leaves the shares unadjusted.
    This is QuaPy's ACC.solve_adjustment(method="inversion", solver="exact-cc") followed by
    normalize_prevalence(method="clip"), written in numpy so that it needs no torch
    (tests/ml/test_quantify.py checks it against QuaPy's).
    """
    rates = (counts / counts.sum(1, keepdims=True)).T
    try:
        estimate = np.linalg.solve(rates, observed)
    except np.linalg.LinAlgError:
        estimate = observed
    clipped = np.clip(estimate, 0, 1)
    total = clipped.sum()
    return clipped / total if total > 0 else np.full(len(clipped), 1 / len(clipped))


# --- reading the numbers -----------------------------------------------------------------------


def enough_faces(faces: int) -> bool:
    """Whether a session has enough faces for its shares to support a conclusion."""
    return faces >= MIN_FACES


def change(
    previous: Quantification, current: Quantification, state: str = ENGAGED
) -> Literal["up", "down"] | None:
    """ "up" or "down" when `state`'s share moved between two sessions beyond doubt, else None.

    Only sessions with enough faces are compared, and only a move whose two intervals do not
    overlap counts (a conservative test: two non-overlapping 90 % intervals).
    """
    if not (previous.enough_faces and current.enough_faces):
        return None
    before = previous.intervals[previous.states.index(state)]
    after = current.intervals[current.states.index(state)]
    if after[0] > before[1]:
        return "up"
    if after[1] < before[0]:
        return "down"
    return None

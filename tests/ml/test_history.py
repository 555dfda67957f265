"""A diverging training loss is flagged; a falling or noisy one is not."""

import math

from ml.history import loss_warning


def _history(losses):
    return [{"epoch": i + 1, "loss": loss} for i, loss in enumerate(losses)]


def test_a_rising_loss_is_flagged_with_its_numbers():
    warning = loss_warning(_history([1.9, 1.4, 2.3, 4.8]))
    assert "rose from 1.900" in warning and "4.800" in warning and "learning rate" in warning


def test_a_nan_loss_is_flagged():
    assert "NaN" in loss_warning(_history([1.9, math.nan]))


def test_a_falling_or_slightly_noisy_loss_is_not_flagged():
    assert loss_warning(_history([1.9, 1.2, 0.8, 0.7])) is None
    assert loss_warning(_history([1.9, 1.2, 1.3])) is None  # below where it started
    assert loss_warning(_history([1.0, 1.1])) is None  # too short to judge

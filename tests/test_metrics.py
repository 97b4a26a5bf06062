"""Metrics against values worked out by hand."""

import numpy as np
import pytest

from fercli.evaluate.metrics import (confusion, expected_calibration_error, most_confused, paired_comparison, reliability_bins,
                            summary_metrics)

# Four images, two classes. Confidences 0.9, 0.9 (right, wrong) and 0.65, 0.65 (right, right).
PROBS = np.array([[0.9, 0.1], [0.9, 0.1], [0.35, 0.65], [0.65, 0.35]])
LABELS = np.array([0, 1, 1, 0])


def test_ece_by_hand():
    # Two bins: conf 0.9 holds 2 images at accuracy 0.5 -> |0.5 - 0.9| = 0.4; conf 0.65 holds 2 at accuracy 1.0
    # -> |1.0 - 0.65| = 0.35. ECE = 0.5 * 0.4 + 0.5 * 0.35 = 0.375.
    assert expected_calibration_error(PROBS, LABELS, bins=10) == pytest.approx(0.375)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == pytest.approx(0.0)


def test_reliability_bins_by_hand():
    rows = reliability_bins(PROBS, LABELS, bins=5)  # edges 0, .2, .4, .6, .8, 1
    counts = [r["count"] for r in rows]
    assert counts == [0, 0, 0, 2, 2]  # 0.65 falls in [0.6, 0.8), 0.9 in [0.8, 1]
    assert rows[3]["accuracy"] == 1.0 and rows[3]["confidence"] == pytest.approx(0.65)
    assert rows[4]["accuracy"] == 0.5 and rows[4]["confidence"] == pytest.approx(0.9)


def test_summary_and_confusion_by_hand():
    summary = summary_metrics(PROBS, LABELS)  # two classes: top-2 is every image (sklearn refuses to say so)
    assert summary["accuracy"] == 0.75 and summary["top2_accuracy"] == 1.0
    assert summary["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert summary["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.65, 0.65])))
    three = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    assert summary_metrics(three, np.array([0, 1, 2]))["top2_accuracy"] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(confusion(PROBS, LABELS, 2), [[2, 0], [1, 1]])


def test_most_confused_pairs_by_hand():
    matrix = np.array([[5, 3, 0], [1, 4, 0], [6, 0, 2]])
    pairs = most_confused(matrix, ("a", "b", "c"), n=5)
    assert [(p["true"], p["pred"], p["count"]) for p in pairs] == [("c", "a", 6), ("a", "b", 3), ("b", "a", 1)]
    assert pairs[0]["share_of_true"] == pytest.approx(6 / 8)


def test_paired_comparison_by_hand():
    a = np.array([1, 1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 0, 0, 1, 1], dtype=bool)
    result = paired_comparison(a, b)  # A alone right on 2 images, B alone on 1: 3 fair coins, P(split 2-1 or worse) = 1
    assert (result["only_a"], result["only_b"]) == (2, 1) and result["p_value"] == pytest.approx(1.0)
    lopsided = paired_comparison(np.ones(10, bool), np.zeros(10, bool))  # 10-0: 2 * 0.5^10
    assert lopsided["p_value"] == pytest.approx(2 / 1024)
    assert paired_comparison(a, a) == {"only_a": 0, "only_b": 0, "p_value": 1.0}

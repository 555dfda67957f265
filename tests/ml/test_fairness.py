"""Bias audit numbers on a hand-built case, age binning and mitigation weights."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import f1_score
from torch.utils.data import WeightedRandomSampler

from ml.__main__ import main
from ml.checkpoint import load_checkpoint, save_checkpoint
from ml.data import age_groups, load_images
from ml.errors import DataError
from ml.fairness import audit, mitigation_weights
from ml.recipe import TrainConfig
from ml.train import train


def _case():
    """105 predictions: men 57/60 right, women 24/40, a 5-person group "x" 5/5.

    "site" splits the same rows: s1 = 25 right men + 10 wrong women (25/35), s2 = the rest
    (61/70), so s1 is 10.5 points below overall but with a wide interval.
    """
    gender = np.array(["m"] * 60 + ["f"] * 40 + ["x"] * 5, dtype=object)
    correct = np.array([True] * 57 + [False] * 3 + [True] * 24 + [False] * 16 + [True] * 5)
    y_true = np.arange(105) % 3
    y_pred = np.where(correct, y_true, (y_true + 1) % 3)
    site = np.full(105, "s2", dtype=object)
    site[:25] = "s1"
    site[84:94] = "s1"  # ten of the sixteen wrong women
    return y_true, y_pred, {"gender": gender, "site": site}


def test_audit_hand_built_numbers():
    y_true, y_pred, attributes = _case()
    report = audit(y_true, y_pred, attributes, ["a", "b", "c"], source="test fixture")
    json.dumps(report, allow_nan=False)
    assert report["source"] == "test fixture" and report["n"] == 105
    overall = 86 / 105
    assert report["accuracy"] == pytest.approx(overall)

    gender = report["attributes"]["gender"]
    groups = gender["groups"]
    assert gender["overall"]["accuracy"] == pytest.approx(overall)
    assert {g: e["accuracy"] for g, e in groups.items()} == pytest.approx(
        {"m": 0.95, "f": 0.6, "x": 1.0}
    )
    assert {g: e["n"] for g, e in groups.items()} == {"m": 60, "f": 40, "x": 5}
    assert {g: e["small"] for g, e in groups.items()} == {"m": False, "f": False, "x": True}
    # The small perfect group must not become the reference.
    assert gender["best_group"] == "m"
    assert groups["f"]["accuracy_difference_to_best"] == pytest.approx(0.6 - 0.95)
    assert groups["f"]["accuracy_ratio_to_best"] == pytest.approx(0.6 / 0.95)
    assert groups["f"]["accuracy_difference_to_overall"] == pytest.approx(0.6 - overall)
    assert groups["f"]["accuracy_ratio_to_overall"] == pytest.approx(0.6 / overall)
    assert gender["disparity"]["accuracy_difference"] == pytest.approx(0.35)
    assert gender["disparity"]["accuracy_ratio"] == pytest.approx(0.6 / 0.95)
    women = attributes["gender"] == "f"
    assert groups["f"]["macro_f1"] == pytest.approx(
        f1_score(y_true[women], y_pred[women], average="macro")
    )
    for entry in groups.values():
        assert entry["ci_low"] <= entry["accuracy"] <= entry["ci_high"]
    width = {g: e["ci_high"] - e["ci_low"] for g, e in groups.items()}
    assert width["m"] < width["f"]  # more samples, higher accuracy: a narrower interval

    site = report["attributes"]["site"]["groups"]
    assert site["s1"]["accuracy"] == pytest.approx(25 / 35)
    assert site["s1"]["accuracy"] < overall - 0.05 < site["s1"]["ci_high"]

    # Women: 22 points below with the interval agreeing -> finding. s1: 10.5 points below but
    # its interval reaches overall -> none. x: small -> none.
    assert [(f["attribute"], f["group"]) for f in report["findings"]] == [("gender", "f")]
    assert report["findings"][0]["difference"] == pytest.approx(0.6 - overall)


def test_audit_is_seeded_and_threshold_matters():
    y_true, y_pred, attributes = _case()
    first = audit(y_true, y_pred, attributes, ["a", "b", "c"], source="s", seed=3)
    again = audit(y_true, y_pred, attributes, ["a", "b", "c"], source="s", seed=3)
    assert first == again
    lenient = audit(y_true, y_pred, attributes, ["a", "b", "c"], source="s", threshold=0.3)
    assert lenient["findings"] == []


def test_audit_missing_values_and_bad_input():
    y_true, y_pred, attributes = _case()
    gender = attributes["gender"].copy()
    gender[:10] = ""
    report = audit(y_true, y_pred, {"gender": gender}, ["a", "b", "c"], source="s")
    assert report["attributes"]["gender"]["missing"] == 10
    assert report["attributes"]["gender"]["overall"]["n"] == 95
    with pytest.raises(DataError):
        audit(y_true, y_pred, {"gender": gender[:50]}, ["a", "b", "c"], source="s")
    with pytest.raises(DataError):
        audit(y_true, y_pred, {"gender": np.full(105, "", dtype=object)}, ["a"], source="s")


def test_age_groups_bins_the_seed_groups():
    ages = [0, 27, 27.9, 28, 54, 55, 80, "30", "", "n/a", None, float("nan")]
    assert list(age_groups(ages)) == [
        "Young", "Young", "Young", "Mid", "Mid", "Senior", "Senior", "Mid", "", "", "", "",
    ]  # fmt: skip


def test_rebalance_makes_groups_equally_likely():
    values = np.array(["a"] * 800 + ["b"] * 150 + ["c"] * 50, dtype=object)
    weights = mitigation_weights(values, "rebalance")
    assert weights.sum() == pytest.approx(1.0)
    sampler = WeightedRandomSampler(
        torch.as_tensor(weights), num_samples=30_000, generator=torch.Generator().manual_seed(0)
    )
    drawn = values[np.fromiter(sampler, dtype=np.int64)]
    share = {g: float(np.mean(drawn == g)) for g in "abc"}
    assert share == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, abs=0.02)
    # Without the weights the small group would be drawn 5% of the time.
    assert float(np.mean(values == "c")) == pytest.approx(0.05)


def test_reweight_gives_each_group_equal_total_loss_weight():
    values = np.array(["a"] * 800 + ["b"] * 150 + ["c"] * 50, dtype=object)
    weights = mitigation_weights(values, "reweight")
    assert weights.mean() == pytest.approx(1.0)
    totals = [weights[values == g].sum() for g in "abc"]
    assert totals == pytest.approx([1000 / 3] * 3)
    assert weights[values == "c"][0] == pytest.approx(16 * weights[values == "a"][0])
    with pytest.raises(DataError):
        mitigation_weights(values, "oversample")


def _write_dataset(root, n_per_class=20, size=16):
    """Dark and bright noise images in two class folders, plus an attributes CSV in which
    "group" alternates a/b and "age_estimate" runs 20..59."""
    rng = np.random.default_rng(0)
    rows = ["file,class,group,age_estimate"]
    for label, (name, low, high) in enumerate((("dark", 0, 80), ("bright", 170, 256))):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(low, high, (size, size), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{label}{i:03d}.png")
            rows.append(f"{label}{i:03d}.png,{name},{'ab'[i % 2]},{20 + i * 2}")
    (root / "attributes.csv").write_text("\n".join(rows) + "\n")


def test_mitigate_and_audit_cli(tmp_path, capsys):
    root = tmp_path / "data"
    _write_dataset(root)
    data_args = ["--data", str(root), "--attributes", str(root / "attributes.csv")]
    train_args = ["--arch", "seed-main", "--epochs", "1", "--batch-size", "8", "--input-size",
                  "16", "--device", "cpu", "--no-augment", "--normalisation", "scale"]  # fmt: skip
    out = tmp_path / "mitigated.pt"
    options = ["--attribute", "group", "--source", "test", "--out", str(out), "--json"]
    assert main(["mitigate", *data_args, *train_args, *options]) == 0
    result = json.loads(capsys.readouterr().out)
    # 30% of the 40 images held out for the audits, 10% of the rest for epoch selection.
    assert result["split"]["n_eval"] == 12 and result["n_train"] + result["split"]["n_val"] == 28
    assert set(result["comparison"]) == {"a", "b"}
    assert result["before"]["source"] == result["after"]["source"] == "test"
    mitigated, baseline = load_checkpoint(out), load_checkpoint(result["baseline"])
    assert mitigated["classes"] == baseline["classes"] == ["bright", "dark"]
    # Same seed and config: only the rebalanced sampling can make the weights differ.
    assert not all(
        torch.equal(mitigated["state_dict"][k], baseline["state_dict"][k])
        for k in mitigated["state_dict"]
    )

    assert main(["audit", "--weights", str(out), *data_args, "--age-bins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # age_estimate is numeric, so only its bins are audited by default.
    assert set(report["attributes"]) == {"group", "age_bin"}
    assert report["n"] == 40 and "provenance not stated" in report["source"]
    assert set(report["attributes"]["age_bin"]["groups"]) == {"Young", "Mid", "Senior"}


def test_cli_errors_are_one_line(tmp_path, capsys):
    _write_dataset(tmp_path / "data", n_per_class=4)
    (tmp_path / "bad.csv").write_text("name,group\nx.png,a\n")
    args = ["--weights", str(tmp_path / "missing.pt"), "--data", str(tmp_path / "data")]
    assert main(["audit", *args, "--attributes", str(tmp_path / "bad.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    data = load_images(tmp_path / "data", size=16)
    config = TrainConfig(arch="seed-main", epochs=1, batch_size=8, input_size=16, device="cpu")
    save_checkpoint(tmp_path / "model.pt", train(data, None, config))
    args[1] = str(tmp_path / "model.pt")
    assert main(["audit", *args, "--attributes", str(tmp_path / "bad.csv")]) == 2
    assert "no 'file' column" in capsys.readouterr().err
    csv = str(tmp_path / "data" / "attributes.csv")
    assert main(["audit", *args, "--attributes", csv, "--columns", "gender"]) == 2
    assert "gender" in capsys.readouterr().err

"""`python -m ml`: output formats and one-line errors with exit status 2."""

import json
import subprocess
import sys
import zipfile

import pytest
import torch

from ml.__main__ import main
from ml.checkpoint import new_checkpoint, save_checkpoint
from ml.models import build_model
from ml.recipe import TrainConfig


@pytest.fixture
def weights(tmp_path):
    config = TrainConfig(arch="edu-vgg-s", input_size=32)
    torch.manual_seed(0)
    path = tmp_path / "w.pt"
    save_checkpoint(path, new_checkpoint(build_model(config.arch, 3, 32), ["a", "b", "c"], config))
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_then_evaluate_and_predict(make_image_folder, tmp_path, capsys):
    data = make_image_folder(n_per_class=6, size=32)
    out = tmp_path / "m.pt"
    code, stdout, _ = run(
        capsys,
        "--threads",
        1,
        "train",
        "--data",
        data,
        "--val",
        data,
        "--out",
        out,
        "--epochs",
        1,
        "--batch-size",
        6,
        "--input-size",
        32,
        "--no-augment",
        "--json",
    )
    assert code == 0
    result = json.loads(stdout)
    assert result["classes"] == ["a", "b", "c"] and result["epochs_run"] == 1 and out.is_file()

    code, stdout, _ = run(capsys, "evaluate", "--weights", out, "--data", data, "--json")
    metrics = json.loads(stdout)
    assert code == 0 and metrics["n"] == 18
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "classes"} <= metrics.keys()

    code, stdout, _ = run(capsys, "predict", "--weights", out, data / "a", "--json")
    rows = json.loads(stdout)
    assert code == 0 and len(rows) == 6
    assert set(rows[0]) >= {"file", "label", "probabilities"}
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_a_student_trains_on_its_teachers_soft_targets(
    make_image_folder, weights, tmp_path, capsys
):
    data = make_image_folder(n_per_class=6, size=32)
    argv = ["train", "--data", data, "--val", data, "--out", tmp_path / "student.pt"]
    argv += ["--epochs", 1, "--batch-size", 6, "--input-size", 32, "--json"]
    code, stdout, _ = run(capsys, *argv, "--teacher", weights, "--teacher-weight", 0.7)
    assert code == 0 and json.loads(stdout)["epochs_run"] == 1
    code, _, err = run(capsys, *argv, "--teacher", weights, "--teacher-weight", 1.5)
    assert code == 2 and "between 0 and 1" in err


def test_human_output(make_image_folder, weights, capsys):
    data = make_image_folder(n_per_class=2, size=32)
    code, stdout, _ = run(capsys, "evaluate", "--weights", weights, "--data", data)
    assert code == 0 and "accuracy=" in stdout and "confusion matrix" in stdout
    code, stdout, _ = run(capsys, "predict", "--weights", weights, data / "a" / "0.png")
    assert code == 0 and stdout.startswith(str(data / "a" / "0.png") + ": ")


def test_error_paths_are_one_line_with_status_2(make_image_folder, weights, tmp_path, capsys):
    data = make_image_folder(classes=("a", "b"), n_per_class=3, size=32)
    (tmp_path / "one" / "a").mkdir(parents=True)
    make_image_folder(classes=("a",), n_per_class=2, size=32, root=tmp_path / "one")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    make_image_folder(classes=("a",), n_per_class=2, size=32, root=tmp_path / "empty")
    other = make_image_folder(classes=("a", "z"), n_per_class=2, size=32, root=tmp_path / "o")
    bad_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_zip, "w") as z:
        z.writestr("../../x/1.png", b"x")
    votes = tmp_path / "votes.csv"
    votes.write_text("file,class,neutral,happiness,surprise,sadness,anger,disgust,fear\n")
    train = ["train", "--out", tmp_path / "x.pt", "--epochs", 1, "--input-size", 32, "--data"]
    cases = [
        (train + [data, "--crowd-votes", tmp_path / "nope.csv"], "does not exist"),
        (train + [data, "--val", data, "--crowd-votes", votes], "no votes for ['a', 'b']"),
        (train + [data, "--val", data, "--teacher", weights], "differ from the dataset's"),
        (train + [tmp_path / "nope"], "does not exist"),
        (train + [tmp_path / "one"], "two classes"),
        (train + [tmp_path / "empty"], "no readable images"),
        (train + [data, "--val", other], "differ"),
        (train + [bad_zip], "outside the archive"),
        (["evaluate", "--weights", tmp_path / "none.pt", "--data", data], "does not exist"),
        (["evaluate", "--weights", weights, "--data", other], "match neither"),
        (["predict", "--weights", weights, tmp_path / "nope.png"], "does not exist"),
    ]
    for argv, message in cases:
        code, stdout, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_unreadable_file_in_predict_is_reported_not_fatal(weights, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"garbage")
    code, stdout, _ = run(capsys, "predict", "--weights", weights, tmp_path / "bad.png", "--json")
    assert code == 1 and "error" in json.loads(stdout)[0]


def test_module_entry_point_runs_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml",
            "evaluate",
            "--weights",
            tmp_path / "x.pt",
            "--data",
            tmp_path,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ")


def test_the_default_learning_rate_follows_the_optimizer(capsys):
    from ml.__main__ import build_parser
    from ml.cli.common import config_from_args

    def lr(*options):
        args = build_parser().parse_args(["train", "--data", "d", "--out", "o.pt", *options])
        return config_from_args(args).lr

    assert lr() == 0.1 and lr("--optimizer", "sgd") == 0.1
    assert lr("--optimizer", "adamw") == 0.002
    assert lr("--optimizer", "adamw", "--lr", "0.01") == 0.01
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "(default: 0.1 for sgd, 0.002 for adamw)" in " ".join(capsys.readouterr().out.split())

"""Loading folders and zips, attributes, splits and preprocessing."""

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ml.data import attach_attributes, crowd_targets, load_images, stratified_split
from ml.errors import DataError, MLError
from ml.preprocess import normalise, to_grayscale_array
from tests.ml.conftest import make_image_set


def test_folder_is_decoded_once_into_uint8(make_image_folder):
    root = make_image_folder(classes=("b_sad", "a_happy"), n_per_class=3, size=32)
    data = load_images(root, size=48)
    assert data.classes == ["a_happy", "b_sad"]  # sorted, not in creation order
    assert data.images.shape == (6, 48, 48) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert all(
        f.startswith(data.classes[y] + "/") for f, y in zip(data.files, data.labels, strict=True)
    )
    assert data.errors == []


def test_zip_matches_folder_and_unreadable_files_are_reported(make_image_folder, tmp_path):
    root = make_image_folder(classes=("x", "y"), n_per_class=2)
    (root / "x" / "broken.png").write_bytes(b"not an image")
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(root.rglob("*.png")):
            z.write(path, f"dataset/{path.relative_to(root)}")
    from_zip, from_folder = load_images(archive), load_images(root)
    assert from_zip.files == from_folder.files
    assert np.array_equal(from_zip.images, from_folder.images)
    assert [f for f, _ in from_zip.errors] == ["x/broken.png"]
    assert len(from_zip) == 4


def test_zip_entries_escaping_the_archive_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../a/1.png", b"x")
    with pytest.raises(DataError, match="outside"):
        load_images(archive)


def test_bad_sources_raise_data_error(tmp_path, make_image_folder):
    with pytest.raises(DataError, match="does not exist"):
        load_images(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="neither"):
        load_images(tmp_path / "file.txt")
    root = make_image_folder(classes=("a", "b"), n_per_class=2)
    (root / "empty").mkdir()
    (root / "empty" / "bad.png").write_bytes(b"")
    with pytest.raises(DataError, match="'empty' has no readable images"):
        load_images(root)


def test_attributes_join_by_class_and_file_and_bin_ages(make_image_folder, tmp_path):
    data = load_images(make_image_folder(classes=("a", "b"), n_per_class=1))
    csv = tmp_path / "attrs.csv"
    csv.write_text(
        "split,class,file,gender,age_estimate\nval,a,0.png,female,12\n"
        "val,b,0.png,male,99\nval,b,1.png,male,40\n"
    )
    out = attach_attributes(data, csv, age_bins=True)
    assert out.files == ["a/0.png", "b/1.png"]
    assert out.attributes["gender"].tolist() == ["female", "male"]
    assert out.attributes["age_bin"].tolist() == ["Young", "Mid"]
    assert "class" not in out.attributes and "split" not in out.attributes
    (tmp_path / "nofile.csv").write_text("name,gender\n0.png,f\n")
    with pytest.raises(DataError, match="no 'file' column"):
        attach_attributes(data, tmp_path / "nofile.csv")


def test_stratified_split_is_disjoint_stratified_and_seeded(make_image_folder):
    data = load_images(make_image_folder(classes=("a", "b"), n_per_class=10, size=16), size=16)
    train, val = stratified_split(data, 0.2, seed=3)
    assert set(train.files).isdisjoint(val.files) and len(train) + len(val) == 20
    assert np.bincount(val.labels).tolist() == [2, 2]
    assert stratified_split(data, 0.2, seed=3)[1].files == val.files


def test_normalisations():
    batch = torch.randint(0, 256, (4, 48, 48), dtype=torch.uint8)
    x = normalise(batch, "standardize")
    assert x.shape == (4, 1, 48, 48)
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-4)
    assert torch.allclose(x.std(dim=(1, 2, 3)), torch.ones(4), atol=1e-3)
    dark = (batch // 4).to(torch.uint8)
    eq = normalise(dark, "equalize")
    assert eq.min() >= -1 and eq.max() == 1  # equalisation stretches a dark image to full range
    assert torch.equal(normalise(batch, "scale"), batch.float().unsqueeze(1) / 127.5 - 1)
    with pytest.raises(MLError):
        normalise(batch, "magic")


def test_to_grayscale_array_resizes_colour_images():
    image = Image.new("RGB", (100, 60), (255, 0, 0))
    out = to_grayscale_array(image, 48)
    assert out.shape == (48, 48) and out.dtype == np.uint8 and int(out[0, 0]) == 76


def test_crowd_targets_blend_labels_with_votes_for_the_datasets_classes(tmp_path):
    data = make_image_set(("angry", "happy", "sad"), n_per_class=2)  # files angry/0.png ...
    votes = tmp_path / "votes.csv"
    votes.write_text(
        "file,class,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,not_face\n"
        "0.png,angry,0,6,0,0,2,0,0,0,0,0\n"  # crowd mostly says happy
        "2.png,happy,0,0,0,0,0,0,0,9,1,0\n"  # only categories without a class here
        "1.png,happy,0,9,0,0,0,0,0,0,0,0\n"  # wrong class column: no match
    )
    targets = crowd_targets(data, votes, weight=0.5)
    assert targets.shape == (6, 3) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(targets[0], [0.5 + 0.5 * 2 / 8, 0.5 * 6 / 8, 0.0])
    np.testing.assert_allclose(targets[1], [1.0, 0.0, 0.0])  # no row for (angry, 1.png)
    np.testing.assert_allclose(targets[2], [0.0, 1.0, 0.0])  # no usable vote: its label
    np.testing.assert_allclose(crowd_targets(data, votes, weight=0.0), np.eye(3)[data.labels])
    with pytest.raises(DataError, match="between 0 and 1"):
        crowd_targets(data, votes, weight=1.5)
    with pytest.raises(DataError, match="no votes for"):
        crowd_targets(make_image_set(("angry", "bored")), votes, weight=0.5)

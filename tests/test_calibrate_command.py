"""`manage.py calibrate_model`: the shipped model's calibration from a folder of labelled faces."""

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from ml.labels import FER_CLASSES

pytestmark = pytest.mark.django_db


def test_calibrating_the_active_version_counts_every_face(model_version, tmp_path):
    rng = np.random.default_rng(0)
    for name in FER_CLASSES:
        (tmp_path / "val" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (48, 48), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "val" / name / f"{i}.png")
    assert model_version.calibration is None
    call_command("calibrate_model", "--data", str(tmp_path / "val"))
    model_version.refresh_from_db()
    calibration = model_version.calibration
    assert calibration["states"] == ["Angry", "Neutral", "Engaged", "Bored"]
    # 7 classes x 3 faces: Angry has angry + disgust (6), Neutral 3, Engaged 6, Bored 6.
    assert [sum(row) for row in calibration["confusion"]] == [6, 3, 6, 6]


def test_a_missing_folder_is_a_clear_error_and_stores_nothing(model_version, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("calibrate_model", "--data", str(tmp_path / "nowhere"))
    model_version.refresh_from_db()
    assert model_version.calibration is None

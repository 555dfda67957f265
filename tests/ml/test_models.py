"""The architecture registry."""

import pytest
import torch

from ml.errors import MLError
from ml.models import ARCHITECTURES, build_model
from ml.recipe import DEFAULT_ARCH


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_maps_faces_to_class_logits(name):
    model = build_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)


def test_default_is_registered_and_small_enough_to_ship():
    params = sum(p.numel() for p in build_model(DEFAULT_ARCH, 7).parameters())
    assert params * 4 < 20 * 1024 * 1024


def test_seed_main_uses_4x4_kernels_and_variant2_is_deeper():
    def convs(name):
        return [m for m in build_model(name, 4).modules() if isinstance(m, torch.nn.Conv2d)]

    assert {c.kernel_size for c in convs("seed-main")} == {(4, 4)}
    assert {c.kernel_size for c in convs("seed-variant1")} != {(4, 4)}
    assert len(convs("seed-variant1")) == len(convs("seed-main")) < len(convs("seed-variant2"))


def test_bad_requests_raise():
    with pytest.raises(MLError, match="unknown architecture"):
        build_model("resnet9000", 7)
    with pytest.raises(MLError, match="two classes"):
        build_model(DEFAULT_ARCH, 1)

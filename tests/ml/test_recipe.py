"""The training recipe: defaults that depend on other fields, and overriding a stored recipe."""

from ml.recipe import TrainConfig, override


def test_a_config_without_lr_takes_its_optimizers_default():
    assert TrainConfig().lr == 0.1
    assert TrainConfig(optimizer="adamw").lr == 0.002
    assert TrainConfig(optimizer="adamw", lr=0.05).lr == 0.05


def test_changing_the_optimizer_of_a_recipe_drops_the_old_optimizers_lr():
    sgd = {"arch": "edu-vgg-s", "optimizer": "sgd", "lr": 0.1, "epochs": 5}
    changed = override(sgd, {"optimizer": "adamw", "epochs": None, "k": 3})
    assert changed == {"arch": "edu-vgg-s", "optimizer": "adamw", "epochs": 5}
    assert TrainConfig(**changed).lr == 0.002
    assert override(sgd, {"optimizer": "adamw", "lr": 0.01})["lr"] == 0.01
    assert override(sgd, {"optimizer": "sgd", "epochs": 2}) == {**sgd, "epochs": 2}
    # A recipe stored before optimizers were a choice was SGD.
    assert override({"lr": 0.1}, {"optimizer": "sgd"}) == {"lr": 0.1, "optimizer": "sgd"}

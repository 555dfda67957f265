"""The training recipe, defined once: TrainConfig's fields with their type, default, choices,
bounds and help. The CLI options, the web form, the API's parameter schema and the job handler
are all derived from these fields.

Torch-free on purpose: the web process builds its forms and schema from this module and must
not load torch (about 470 MB and 6 s per process).
"""

from dataclasses import dataclass

from ml.errors import MLError
from ml.options import Option, check, option, options_of

# The architectures ml.models can build (it maps each name to its builder).
ARCHITECTURE_NAMES = ("seed-main", "seed-variant1", "seed-variant2", "edu-vgg-s", "edu-vgg")
DEFAULT_ARCH = "edu-vgg-s"
# "standardize" (per-image zero mean, unit variance) makes the model blind to global brightness
# and contrast, the "uniform lighting" of the seed; "equalize" is histogram equalisation;
# "scale" only maps 0..255 to -1..1.
NORMALISATIONS = ("standardize", "equalize", "scale")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("onecycle", "cosine", "none")
PRECISIONS = ("auto", "fp32")
# The peak learning rate when none is given, per optimizer: SGD with Nesterov momentum and the
# one-cycle schedule trains at 0.1; AdamW diverges there and wants about 2e-3 (the shipped
# default model is AdamW at 2e-3).
DEFAULT_LR = {"sgd": 0.1, "adamw": 2e-3}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run; stored in every checkpoint."""

    arch: str = option(DEFAULT_ARCH, "model architecture", choices=ARCHITECTURE_NAMES)
    epochs: int = option(30, "training epochs", minimum=1)
    batch_size: int = option(128, "images per batch (per process under torchrun)", minimum=1)
    # None: the optimizer's own default (DEFAULT_LR), resolved when the config is made.
    lr: float = option(
        None, "peak learning rate (positive)", minimum=1e-8,
        default_text=", ".join(f"{lr:g} for {optimizer}" for optimizer, lr in DEFAULT_LR.items()),
    )  # fmt: skip
    weight_decay: float = option(5e-4, "weight decay (not on biases and norms)", minimum=0.0)
    optimizer: str = option("sgd", "sgd (Nesterov momentum) or adamw", choices=OPTIMIZERS)
    scheduler: str = option("onecycle", "learning-rate schedule", choices=SCHEDULERS)
    patience: int = option(
        0, "stop after this many epochs without val improvement (0: never)", minimum=0
    )
    augment: bool = option(
        True, "augment training batches (shift, scale, rotation, flip, contrast, erasing)"
    )
    small_faces: float = option(
        0.0,
        "share of training faces shrunk to 12-40 px and enlarged back, as small faces in photos",
        minimum=0.0,
        maximum=1.0,
    )
    class_weighting: bool = option(False, "weight the loss by inverse class frequency")
    label_smoothing: float = option(0.1, "label smoothing, in [0, 1)", minimum=0.0, maximum=0.99)
    seed: int = option(0, "seed of splits, initialisation, order and augmentation", minimum=0)
    device: str = option("auto", "auto, cpu, cuda or cuda:N", machine=True)
    normalisation: str = option(
        "standardize", "per-image input normalisation", choices=NORMALISATIONS
    )
    input_size: int = option(48, "input side in pixels (a multiple of 16)", minimum=16)
    # "auto": bf16 autocast on CUDA and on CPUs with AMX or AVX512-BF16 (several times faster
    # there), float32 elsewhere; "fp32" forces float32.
    precision: str = option("auto", "auto (bf16 where fast) or fp32", choices=PRECISIONS)
    # Gaussian blur (pixels) applied to validation and serving inputs, never to training
    # images: for a training set blurrier than the photos served (FER2013 train here).
    input_blur: float = option(
        0.0,
        "Gaussian sigma (px) for validation and serving inputs; training images unchanged",
        minimum=0.0,
    )

    def __post_init__(self):
        if self.lr is None:
            self.lr = DEFAULT_LR.get(self.optimizer)

    def validate(self) -> None:
        """Raise MLError for values that cannot work."""
        check(self)
        if self.input_size % 16:
            raise MLError(f"input size must be a multiple of 16, got {self.input_size}")


def recipe_options(machine: bool = False) -> list[Option]:
    """TrainConfig's fields in order; with `machine`, also those that pick the hardware."""
    return options_of(TrainConfig, machine)


def recipe_names() -> list[str]:
    """The names a job's parameters may set (every field but the machine ones)."""
    return [o.name for o in recipe_options()]


def override(recipe: dict, changes: dict) -> dict:
    """`recipe` (a run's parameters) with the recipe fields `changes` gives (None: unchanged).

    A changed optimizer without an lr of its own takes that optimizer's default lr: the old lr
    was tuned for the old optimizer (SGD's 0.1 makes AdamW diverge).
    """
    given = {k: changes[k] for k in recipe_names() if changes.get(k) is not None}
    merged = {**recipe, **given}
    old_optimizer = recipe.get("optimizer", TrainConfig.optimizer)
    if given.get("optimizer", old_optimizer) != old_optimizer and "lr" not in given:
        merged.pop("lr", None)
    return merged

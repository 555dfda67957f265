"""Load a checkpoint once and classify face crops in batches."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ml.checkpoint import Checkpoint, load_checkpoint, models_from_checkpoint
from ml.data import ImageSet, blend_targets
from ml.device import autocast, autocast_dtype, model_input, prepare_model, resolve_device
from ml.errors import CheckpointError, InvalidImage
from ml.labels import to_state

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.pt"
# The default model's state-level errors on FER2013 val (ml.quantify's Calibration as JSON),
# written by `python -m ml evaluate --weights default --calibration-out` with the weights.
DEFAULT_CALIBRATION = DEFAULT_WEIGHTS.with_name("default.calibration.json")
# Above this many faces a call is split into chunks, to bound memory; below it, one forward.
MAX_BATCH = 1024


def resolve_weights(weights: str | Path) -> Path:
    """The checkpoint path for a path or the name "default" (the shipped model)."""
    if str(weights) == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise CheckpointError(f"the default model {DEFAULT_WEIGHTS} is missing")
        return DEFAULT_WEIGHTS
    return Path(weights)


class Classifier:
    """An expression classifier: a model (or an ensemble averaged as one) plus the classes and
    preprocessing it was trained with."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str = "auto",
        precision: str | None = None,
        mirror_average: bool = False,
        int8: bool | None = None,
    ):
        self.checkpoint = checkpoint
        # Averaging each face's probabilities with its mirror image's gains about 1 point of
        # val accuracy but halves the faces per second, already under the 1,000 faces/s
        # budget on 2 cores without AMX (MODEL_CARD.md, "Speed"): off by default
        # (benchmarks/model_report.py measures both).
        self.mirror_average = mirror_average
        self.classes: list[str] = list(checkpoint["classes"])
        self.input_size: int = int(checkpoint["input_size"])
        self.normalisation: str = checkpoint["normalisation"]
        self.input_blur: float = float(checkpoint["input_blur"])
        self.state_mapping: dict[str, str] = dict(checkpoint["state_mapping"])
        self.arch: str = checkpoint["arch"]
        self.metrics: dict = dict(checkpoint["metrics"])
        self.device = resolve_device(device)
        ranges = checkpoint.get("int8")
        if int8 is None:
            # int8 where the checkpoint was prepared for it (the CPU), unless float32 is asked.
            int8 = bool(ranges) and self.device.type == "cpu" and precision != "fp32"
        if precision is None:
            precision = checkpoint["config"].get("precision", "auto")
        if int8 and (not ranges or self.device.type != "cpu"):
            raise CheckpointError(
                "int8 serving needs a CPU and a checkpoint with activation ranges "
                "(python -m ml ensemble --calibrate)"
            )
        self.int8 = int8
        self.amp_dtype = None if int8 else autocast_dtype(self.device, precision)
        models = [prepare_model(m, self.device).eval() for m in models_from_checkpoint(checkpoint)]
        if int8:
            from ml.int8 import quantize  # deferred: torch.ao loads only where int8 serves

            example = model_input(torch.zeros(1, self.input_size, self.input_size), "scale")
            models = [quantize(m, r, example) for m, r in zip(models, ranges, strict=True)]
        self.models = models

    @property
    def description(self) -> str:
        """The architecture, how many networks are averaged and how they are served, in words:
        "edu-vgg-s", "edu-vgg-s x 2, int8"."""
        networks = f" x {len(self.models)}" if len(self.models) > 1 else ""
        return self.arch + networks + (", int8" if self.int8 else "")

    @classmethod
    def load(cls, weights: str | Path = "default", device: str = "auto") -> "Classifier":
        """Load a checkpoint file, or the shipped default model for "default"."""
        return cls(load_checkpoint(resolve_weights(weights)), device=device)

    def _as_batch(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim != 3:
            raise InvalidImage(f"faces must be an (N, H, W) grayscale array, got {faces.shape}")
        if faces.dtype != np.uint8:
            raise InvalidImage(f"faces must be uint8 pixels, got {faces.dtype}")
        if faces.shape[1:] != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            faces = (
                np.stack(
                    [
                        np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR))
                        for f in faces
                    ]
                )
                if len(faces)
                else np.zeros((0, *size), np.uint8)
            )
        return faces

    @torch.no_grad()
    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) float32 for uint8 grayscale faces (N, S, S).

        One forward pass per call (chunked only above MAX_BATCH faces); faces of another size
        are resized first.
        """
        faces = self._as_batch(faces)
        out = np.zeros((len(faces), len(self.classes)), dtype=np.float32)
        for start in range(0, len(faces), MAX_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(faces[start : start + MAX_BATCH]))
            with autocast(self.device, self.amp_dtype):
                x = model_input(batch.to(self.device), self.normalisation, self.input_blur)
                if self.mirror_average:
                    x = torch.cat([x, x.flip(3)])
                # Every model (and both mirror halves) votes with equal weight.
                probabilities = sum(model(x).float().softmax(1) for model in self.models)
            if self.mirror_average:
                probabilities = probabilities[: len(batch)] + probabilities[len(batch) :]
            views = len(self.models) * (2 if self.mirror_average else 1)
            out[start : start + len(batch)] = (probabilities / views).cpu().numpy()
        return out

    def predict(self, faces: np.ndarray) -> list[str]:
        """The most likely class name of each face."""
        return [self.classes[i] for i in self.predict_proba(faces).argmax(1)]

    def state_of(self, label: str) -> str:
        """The classroom state of a predicted class name."""
        return to_state(label, self.state_mapping)


def distillation_targets(data: ImageSet, teacher: Classifier, weight: float) -> np.ndarray:
    """Soft training targets (N, C) for a student: each image's label blended with `teacher`'s
    probabilities for it (`weight` the teacher's share; see ml.data.blend_targets).

    The teacher must know the dataset's classes in the same order.
    """
    if list(teacher.classes) != list(data.classes):
        raise CheckpointError(
            f"the teacher's classes {teacher.classes} differ from the dataset's {data.classes}"
        )
    return blend_targets(data, teacher.predict_proba(data.images), weight)

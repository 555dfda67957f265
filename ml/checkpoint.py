"""The typed checkpoint: what a model file holds, its format version, atomic save and load.

One dict (a plain dict on disk, so `torch.load(weights_only=True)` can read it without running
code) with the unwrapped weights plus everything inference and a resumed run need: classes,
preprocessing, the recipe, metrics, history and, while a run is unfinished, optimizer and
scheduler state.
"""

import dataclasses
import os
from pathlib import Path
from typing import TypedDict

import torch
from torch import nn

from ml.errors import CheckpointError
from ml.labels import default_state_mapping
from ml.models import build_model
from ml.recipe import TrainConfig

# Bumped when a key changes meaning or a required key is added; load_checkpoint refuses others.
CHECKPOINT_FORMAT = 1


class Resume(TypedDict):
    """What continues an unfinished run (None in a finished checkpoint: it ships, keep it small)."""

    model: dict  # the latest epoch's weights; the checkpoint's state_dict is the best epoch's
    scheduler: dict | None
    best_score: float
    stale: int


class Member(TypedDict):
    """One more model of an ensemble: its recipe, scores and weights."""

    arch: str
    config: dict
    metrics: dict
    state_dict: dict


class Checkpoint(TypedDict):
    """A model file's content (format CHECKPOINT_FORMAT).

    Two optional keys: `members`, the further models of an ensemble (combine_checkpoints;
    predictions average the top-level model and every member), and `int8`, each model's
    activation ranges for int8 serving on the CPU (ml.int8), top-level model first.
    """

    format: int
    arch: str
    classes: list[str]
    input_size: int
    normalisation: str
    input_blur: float
    state_mapping: dict[str, str]
    config: dict  # dataclasses.asdict(TrainConfig)
    metrics: dict
    history: list[dict]
    epoch: int
    device: str
    world_size: int
    stopped_early: bool
    cancelled: bool
    state_dict: dict  # the best epoch's weights, without a DataParallel/DDP wrapper
    optimizer: dict | None
    resume: Resume | None


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel / DistributedDataParallel wrapper."""
    return (
        model.module
        if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel)
        else model
    )


def cpu_state(model: nn.Module) -> dict:
    """A CPU copy of the (unwrapped) model's weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def new_checkpoint(
    model: nn.Module, classes: list[str], config: TrainConfig, device="cpu", world_size: int = 1
) -> Checkpoint:
    """A complete checkpoint of a model's current weights, before any epoch has run."""
    return Checkpoint(
        format=CHECKPOINT_FORMAT,
        arch=config.arch,
        classes=list(classes),
        input_size=config.input_size,
        normalisation=config.normalisation,
        input_blur=config.input_blur,
        state_mapping=default_state_mapping(classes),
        config=dataclasses.asdict(config),
        metrics={},
        history=[],
        epoch=0,
        device=str(device),
        world_size=world_size,
        stopped_early=False,
        cancelled=False,
        state_dict=cpu_state(model),
        optimizer=None,
        resume=None,
    )


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write a checkpoint atomically (temporary file + os.replace), so a crash never leaves half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint; CheckpointError when unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        # weights_only: a checkpoint from an upload must not be able to run code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r}: {type(exc).__name__}"
        ) from exc
    if not isinstance(checkpoint, dict) or "format" not in checkpoint:
        raise CheckpointError(f"{str(path)!r} is not an EduMood checkpoint")
    if checkpoint["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {checkpoint['format']!r}; this version of "
            f"EduMood reads format {CHECKPOINT_FORMAT}"
        )
    missing = sorted(set(Checkpoint.__annotations__) - set(checkpoint))
    if missing:
        raise CheckpointError(
            f"{str(path)!r} is not an EduMood checkpoint: no {', '.join(missing)}"
        )
    return checkpoint


def model_from_checkpoint(checkpoint: Checkpoint, member: dict | None = None) -> nn.Module:
    """Build the checkpoint's architecture and load its (best) weights, or those of `member`."""
    source = member or checkpoint
    model = build_model(source["arch"], len(checkpoint["classes"]), checkpoint["input_size"])
    try:
        model.load_state_dict(source["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit architecture {source['arch']!r}") from exc
    return model


def models_from_checkpoint(checkpoint: Checkpoint) -> list[nn.Module]:
    """Every model a checkpoint holds: the top-level one, then its ensemble members."""
    members = checkpoint.get("members") or []
    return [model_from_checkpoint(checkpoint)] + [
        model_from_checkpoint(checkpoint, member) for member in members
    ]


# What every model of an ensemble must share: its inputs and the meaning of its outputs.
_SHARED = ("classes", "input_size", "normalisation", "input_blur", "state_mapping")


def combine_checkpoints(checkpoints: list[Checkpoint]) -> Checkpoint:
    """One ensemble checkpoint from finished checkpoints of the same classes and inputs.

    The first keeps its place (weights, arch and config) at the top level, so a reader that
    knows no ensembles still finds a complete model there; the others become `members`. The
    top-level metrics and history describe the combination, not the first model: `models`,
    each model's own metrics (`member_metrics`, in order), and no training curve (no run
    trained the combination). `ml ensemble --val` adds the combination's val accuracy.
    """
    if len(checkpoints) < 2:
        raise CheckpointError("an ensemble needs at least two checkpoints")
    first = checkpoints[0]
    for number, other in enumerate(checkpoints[1:], start=2):
        for key in _SHARED:
            if other[key] != first[key]:
                raise CheckpointError(f"checkpoint {number} differs from the first in {key}")
    for number, checkpoint in enumerate(checkpoints, start=1):
        if checkpoint["resume"] is not None or checkpoint.get("members"):
            raise CheckpointError(
                f"checkpoint {number} is an unfinished run or already an ensemble"
            )
    metrics = {"models": len(checkpoints), "member_metrics": [c["metrics"] for c in checkpoints]}
    combined = Checkpoint(
        **{**first, "optimizer": None, "resume": None, "metrics": metrics, "history": []}
    )
    combined["members"] = [
        Member(arch=c["arch"], config=c["config"], metrics=c["metrics"], state_dict=c["state_dict"])
        for c in checkpoints[1:]
    ]
    combined.pop("int8", None)  # ranges are measured for the combined set (ml ensemble)
    return combined

"""Training: plain train_one_epoch / evaluate functions, early stopping, resumable checkpoints.

train() reads as its steps: the data on the device, the model and optimizer, the loop of
epochs, checkpointing; train_one_epoch takes what every epoch shares as one EpochContext.

The whole dataset lives on the training device as uint8; batches are sliced, augmented and
normalised there, so no image is decoded or touched by PIL after loading.
"""

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.augment import augment_batch
from ml.checkpoint import (
    Checkpoint,
    cpu_state,
    load_checkpoint,
    new_checkpoint,
    save_checkpoint,
    unwrap,
)
from ml.data import ImageSet
from ml.device import autocast, autocast_dtype, model_input, prepare_model, resolve_device
from ml.errors import CheckpointError, DataError, MLError
from ml.models import build_model
from ml.recipe import TrainConfig


@dataclass
class Progress:
    """What a progress callback receives after every batch and after every validation."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    accuracy: float
    val_accuracy: float | None
    eta_seconds: float
    fraction: float
    phase: str = "train"  # "train" after a batch, "val" once an epoch is validated


# --- the two plain loops --------------------------------------------------------------------


@dataclass
class DeviceSet:
    """Images (uint8, N x S x S) and labels on the training device, with what weighs the loss:
    per-class and per-sample weights, and soft targets (N, C) that replace the labels in it."""

    images: torch.Tensor
    labels: torch.Tensor
    class_weight: torch.Tensor | None = None
    sample_weight: torch.Tensor | None = None
    soft_targets: torch.Tensor | None = None


@dataclass
class EpochContext:
    """What every epoch of a run shares, as torchvision's references pass the model, optimizer
    and `args`: the model being trained (inside its DataParallel/DDP wrapper, if any), its
    optimizer and per-batch scheduler, the training set on the device, the recipe (batch size,
    normalisation, augmentation, label smoothing), the autocast dtype and the steps per epoch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    data: DeviceSet
    config: TrainConfig
    amp_dtype: torch.dtype | None
    steps: int


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in an epoch of `n` images. A short last batch is dropped: it would skew the
    batch-norm statistics (a batch of one breaks them); a set smaller than a batch is one."""
    return max(1, n // batch_size) if n > batch_size else 1


def train_one_epoch(
    ctx: EpochContext,
    order: torch.Tensor,
    generator: torch.Generator,
    on_batch: Callable[[int, int, float, float], bool] | None = None,
) -> dict:
    """One epoch of `ctx.steps` batches taken from `order` (indices into the images, on the
    device), augmented with `generator` if the recipe says so.

    `on_batch(step, steps, mean_loss, accuracy)` runs after every batch and returns True to stop
    early (cancel). With soft targets the loss is taken against those distributions instead of
    the labels (accuracy stays against the labels).
    Returns {"loss", "accuracy", "steps", "cancelled"}.
    """
    model, data, config = ctx.model, ctx.data, ctx.config
    model.train()
    device = data.images.device
    size = config.batch_size
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    cancelled = False
    for step in range(ctx.steps):
        index = order[step * size : (step + 1) * size]
        y = data.labels[index]
        x = data.images[index]
        if config.augment:
            x = augment_batch(x, generator, config.small_faces)
        with autocast(device, ctx.amp_dtype):
            logits = model(model_input(x, config.normalisation))
        losses = F.cross_entropy(
            logits.float(),
            data.soft_targets[index] if data.soft_targets is not None else y,
            weight=data.class_weight,
            label_smoothing=config.label_smoothing,
            reduction="none",
        )
        if data.sample_weight is not None:
            losses = losses * data.sample_weight[index]
        loss = losses.mean()
        ctx.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ctx.optimizer.step()
        if ctx.scheduler is not None:
            ctx.scheduler.step()
        total_loss += loss.detach() * len(index)
        total_correct += (logits.argmax(1) == y).sum()
        seen += len(index)
        if on_batch is not None and on_batch(
            step + 1, ctx.steps, total_loss.item() / seen, total_correct.item() / seen
        ):
            cancelled = True
            break
    return {
        "loss": total_loss.item() / max(seen, 1),
        "accuracy": total_correct.item() / max(seen, 1),
        "steps": ctx.steps,
        "cancelled": cancelled,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    normalisation: str,
    amp_dtype: torch.dtype | None,
    batch_size: int = 512,
    blur: float = 0.0,
) -> dict:
    """Loss, accuracy and predictions of a model on uint8 images already on its device.

    Returns {"loss", "accuracy", "predictions", "probabilities"} (loss/accuracy None without
    labels); predictions and probabilities are numpy arrays.
    """
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        with autocast(images.device, amp_dtype):
            batch = images[start : start + batch_size]
            logits = model(model_input(batch, normalisation, blur))
        outputs.append(logits.float())
    logits = torch.cat(outputs) if outputs else torch.zeros(0, 1, device=images.device)
    probabilities = logits.softmax(1)
    predictions = probabilities.argmax(1)
    result = {
        "loss": None,
        "accuracy": None,
        "predictions": predictions.cpu().numpy(),
        "probabilities": probabilities.cpu().numpy(),
    }
    if labels is not None and len(labels):
        result["loss"] = F.cross_entropy(logits, labels).item()
        result["accuracy"] = (predictions == labels).float().mean().item()
    return result


# --- the training driver --------------------------------------------------------------------


def _distributed() -> tuple[int, int]:
    """(rank, world size) under torchrun, initialising the process group once; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "LOCAL_RANK" not in os.environ:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _check_sets(train_set: ImageSet, val_set: ImageSet | None) -> None:
    if len(train_set.classes) < 2:
        raise DataError(f"training needs at least two classes, found {train_set.classes}")
    counts = np.bincount(train_set.labels, minlength=len(train_set.classes))
    empty = [c for c, k in zip(train_set.classes, counts, strict=True) if k == 0]
    if empty:
        raise DataError(f"training data has no images for class(es) {', '.join(empty)}")
    if val_set is not None and list(val_set.classes) != list(train_set.classes):
        raise DataError(
            f"validation classes {val_set.classes} differ from training classes {train_set.classes}"
        )


def train(
    train_set: ImageSet,
    val_set: ImageSet | None,
    config: TrainConfig,
    *,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sample_weights: np.ndarray | None = None,
    sampler_weights: np.ndarray | None = None,
    soft_targets: np.ndarray | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
) -> Checkpoint:
    """Train a model and return its checkpoint (best epoch's weights by val accuracy).

    With `checkpoint_path`, the checkpoint is saved atomically after every epoch, so stopping at
    any point leaves the best weights so far plus what `resume=True` needs to continue (a
    resumed run keeps the checkpoint's config). `sample_weights` scale each sample's loss;
    `sampler_weights` draw each epoch's samples with replacement in proportion to them.
    `soft_targets` (N, C) replace the labels in the loss (ml.data.crowd_targets).

    The steps, in order: the run's device and seeds; the data on the device; the model and
    optimizer; the first checkpoint (or the one resumed); the loop of epochs, which records
    and saves each epoch in the checkpoint.
    """
    _check_sets(train_set, val_set)
    rank, world = _distributed()
    previous = None
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        previous = _previous_run(checkpoint_path, train_set)
        if previous.get("resume") is None:
            return previous  # already finished: nothing left to run
        config = dataclasses.replace(TrainConfig(**previous["config"]), device=config.device)
    config.validate()
    device = _training_device(config, world)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    data, val, draw = _data_on_device(
        train_set, val_set, config, device, sample_weights, sampler_weights, soft_targets
    )
    steps = steps_per_epoch(math.ceil(len(train_set) / world), config.batch_size)
    ctx = _model_and_optimizer(config, data, len(train_set.classes), world, steps)
    checkpoint = new_checkpoint(unwrap(ctx.model), train_set.classes, config, device, world)
    standing = _restore(ctx, checkpoint, previous) if previous is not None else Standing()
    _keep_resume_state(checkpoint, ctx, standing)
    monitor = _Monitor(ctx, checkpoint, progress, should_stop, rank, world)
    save = checkpoint_path is not None and rank == 0
    for epoch in range(checkpoint["epoch"] + 1, config.epochs + 1):
        order, generator = _epoch_order(ctx, epoch, draw, rank, world)
        result = train_one_epoch(ctx, order, generator, monitor.on_batch(epoch))
        if result["cancelled"]:
            checkpoint["cancelled"] = True
            break
        entry = _validated(ctx, epoch, result, val, monitor)
        finished = _record_epoch(checkpoint, ctx, entry, standing)
        monitor.report(epoch, ctx.steps, result["loss"], result["accuracy"], "val")
        if save:
            save_checkpoint(checkpoint_path, checkpoint)
        if finished or monitor.stop_requested():
            checkpoint["cancelled"] = not finished
            break
    if checkpoint["cancelled"] and save:
        save_checkpoint(checkpoint_path, checkpoint)
    return checkpoint


# --- step 1: device, data -------------------------------------------------------------------


def _training_device(config: TrainConfig, world: int) -> torch.device:
    """The configured device; under torchrun on CUDA, this process's GPU (LOCAL_RANK)."""
    device = resolve_device(config.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def _data_on_device(
    train_set: ImageSet,
    val_set: ImageSet | None,
    config: TrainConfig,
    device: torch.device,
    sample_weights: np.ndarray | None,
    sampler_weights: np.ndarray | None,
    soft_targets: np.ndarray | None,
) -> tuple[DeviceSet, DeviceSet | None, torch.Tensor | None]:
    """(training set, validation set) on the device as uint8, checked against the recipe, and
    the sampler weights (on the CPU, where each epoch's order is drawn)."""
    if train_set.images.shape[1:] != (config.input_size, config.input_size):
        raise DataError(
            f"images are {train_set.images.shape[1:]} but the input size is {config.input_size}"
        )
    n, classes = len(train_set), len(train_set.classes)
    expected = (n, classes)
    if soft_targets is not None and soft_targets.shape != expected:
        raise DataError(f"soft targets must have shape {expected}, got {soft_targets.shape}")
    class_weight = None
    if config.class_weighting:
        counts = np.bincount(train_set.labels, minlength=classes).astype(np.float64)
        class_weight = torch.as_tensor(n / (classes * counts), dtype=torch.float32, device=device)
    data = DeviceSet(
        images=torch.from_numpy(train_set.images).to(device),
        labels=torch.from_numpy(train_set.labels).to(device),
        class_weight=class_weight,
        sample_weight=_per_sample(sample_weights, n, "sample weights", device),
        soft_targets=torch.from_numpy(soft_targets).to(device)
        if soft_targets is not None
        else None,
    )
    val = None
    if val_set is not None:
        val = DeviceSet(
            torch.from_numpy(val_set.images).to(device), torch.from_numpy(val_set.labels).to(device)
        )
    return data, val, _per_sample(sampler_weights, n, "sampler weights", "cpu")


def _per_sample(values: np.ndarray | None, n: int, name: str, device) -> torch.Tensor | None:
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    if (
        values.shape != (n,)
        or not np.isfinite(values).all()
        or (values < 0).any()
        or values.sum() <= 0
    ):
        raise MLError(f"{name} must be {n} finite non-negative numbers with a positive sum")
    return torch.as_tensor(values / values.mean(), dtype=torch.float32, device=device)


# --- step 2: model and optimizer ------------------------------------------------------------


def _model_and_optimizer(
    config: TrainConfig, data: DeviceSet, n_classes: int, world: int, steps: int
) -> EpochContext:
    """A fresh model on the data's device (wrapped for DDP or several GPUs), its optimizer and
    a scheduler over the whole run's steps."""
    device = data.images.device
    model = prepare_model(build_model(config.arch, n_classes, config.input_size), device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    elif device.type == "cuda" and torch.cuda.device_count() > 1:
        net = nn.DataParallel(model)
    optimizer = _make_optimizer(model, config)
    scheduler = _make_scheduler(optimizer, config, config.epochs * steps)
    amp_dtype = autocast_dtype(device, config.precision)
    return EpochContext(net, optimizer, scheduler, data, config, amp_dtype, steps)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on batch-norm parameters and biases: decaying them only hurts.
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def _make_scheduler(optimizer, config: TrainConfig, total_steps: int):
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.2
        )
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return None


# --- step 3: the loop -----------------------------------------------------------------------


def _epoch_order(
    ctx: EpochContext, epoch: int, draw: torch.Tensor | None, rank: int, world: int
) -> tuple[torch.Tensor, torch.Generator]:
    """This rank's order of the epoch's images (a permutation, or a draw in proportion to the
    sampler weights) and the generator of its augmentation. Both depend only on (seed, epoch,
    rank): a resumed run repeats them."""
    seed, device = ctx.config.seed, ctx.data.images.device
    order_gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    n = len(ctx.data.labels)
    if draw is not None:
        order = torch.multinomial(draw, n, replacement=True, generator=order_gen)
    else:
        order = torch.randperm(n, generator=order_gen)
    generator = torch.Generator(device=device).manual_seed(seed * 100_003 + epoch * 1009 + rank)
    return _shard(order, rank, world).to(device), generator


def _shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of an epoch's order, every share of length ceil(n / world).

    Padded with the order's first indices as DistributedSampler does: unequal shares give the
    ranks different step counts, and the rank that finishes first dies (gloo) or hangs (NCCL)
    in the next collective.
    """
    shard = math.ceil(len(order) / world)
    padded = order.repeat(math.ceil(shard * world / len(order)))[: shard * world]
    return padded[rank::world]


def _validated(
    ctx: EpochContext, epoch: int, result: dict, val: DeviceSet | None, monitor: "_Monitor"
) -> dict:
    """The epoch's history entry: its training numbers, and its validation scores if there is a
    validation set (the model is scored on it unwrapped, on one device)."""
    entry = {
        "epoch": epoch,
        "loss": result["loss"],
        "accuracy": result["accuracy"],
        "lr": ctx.optimizer.param_groups[0]["lr"],
        "seconds": monitor.elapsed(),
    }
    if val is not None:
        t0 = time.perf_counter()
        scores = evaluate(
            unwrap(ctx.model),
            val.images,
            val.labels,
            normalisation=ctx.config.normalisation,
            amp_dtype=ctx.amp_dtype,
            blur=ctx.config.input_blur,
        )
        monitor.val_seconds = time.perf_counter() - t0
        entry.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        monitor.last_val = scores["accuracy"]
    return entry


class _Monitor:
    """Progress (from rank 0, with an ETA) after every batch and validation, and the cancel
    check, which every rank agrees on under DDP."""

    def __init__(
        self, ctx: EpochContext, checkpoint: Checkpoint, progress, should_stop, rank, world
    ):
        self.ctx, self.progress, self.should_stop = ctx, progress, should_stop
        self.rank, self.world = rank, world
        self.first_epoch = checkpoint["epoch"]
        self.last_val = checkpoint["metrics"].get("val_accuracy")
        self.val_seconds = 0.0
        self.done_steps = 0
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def on_batch(self, epoch: int) -> Callable[[int, int, float, float], bool]:
        """The batch hook of one epoch: report the batch, then say whether to stop."""

        def hook(step: int, steps: int, loss: float, accuracy: float) -> bool:
            self.done_steps += 1
            self.report(epoch, step, loss, accuracy)
            return self.stop_requested()

        return hook

    def report(self, epoch: int, step: int, loss: float, acc: float, phase: str = "train") -> None:
        if self.progress is None or self.rank != 0:
            return
        epochs, steps = self.ctx.config.epochs, self.ctx.steps
        per_step = self.elapsed() / max(self.done_steps, 1)
        remaining_epochs = epochs - epoch + (1 if step < steps else 0)
        total_steps = (epochs - self.first_epoch) * steps
        eta = (total_steps - self.done_steps) * per_step + remaining_epochs * self.val_seconds
        self.progress(
            Progress(
                epoch=epoch,
                epochs=epochs,
                step=step,
                steps=steps,
                loss=loss,
                accuracy=acc,
                val_accuracy=self.last_val,
                eta_seconds=max(eta, 0.0),
                fraction=((epoch - 1) * steps + step) / (epochs * steps),
                phase=phase,
            )
        )

    def stop_requested(self) -> bool:
        stop = self.should_stop is not None and self.rank == 0 and bool(self.should_stop())
        if self.world > 1:
            import torch.distributed as dist

            flag = torch.tensor([int(stop)], device=self.ctx.data.images.device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop


# --- step 4: checkpointing ------------------------------------------------------------------


@dataclass
class Standing:
    """The best score so far and the epochs since it improved (early stopping); a resumed run
    continues from the values its checkpoint kept."""

    best_score: float = -math.inf
    stale: int = 0


def _previous_run(path: str | Path, train_set: ImageSet) -> Checkpoint:
    previous = load_checkpoint(path)
    if list(previous["classes"]) != list(train_set.classes):
        raise CheckpointError("checkpoint classes differ from the training data's classes")
    return previous


def _restore(ctx: EpochContext, checkpoint: Checkpoint, previous: Checkpoint) -> Standing:
    """Continue an unfinished run: its record so far, latest weights, optimizer and scheduler."""
    for key in ("metrics", "history", "epoch", "state_dict"):
        checkpoint[key] = previous[key]
    unwrap(ctx.model).load_state_dict(previous["resume"]["model"])
    ctx.optimizer.load_state_dict(previous["optimizer"])
    if ctx.scheduler is not None and previous["resume"]["scheduler"] is not None:
        ctx.scheduler.load_state_dict(previous["resume"]["scheduler"])
    return Standing(previous["resume"]["best_score"], previous["resume"]["stale"])


def _record_epoch(
    checkpoint: Checkpoint, ctx: EpochContext, entry: dict, standing: Standing
) -> bool:
    """Add an epoch to the checkpoint: its history entry, its weights and metrics if it scored
    best so far (validation accuracy, else the negated training loss), and what a resumed run
    needs while the run is unfinished. Returns whether the run is finished (the last epoch, or
    `patience` epochs without improvement)."""
    config, epoch = ctx.config, entry["epoch"]
    checkpoint["history"].append(entry)
    checkpoint["epoch"] = epoch
    score = entry["val_accuracy"] if "val_accuracy" in entry else -entry["loss"]
    if score > standing.best_score:
        standing.best_score, standing.stale = score, 0
        checkpoint["state_dict"] = cpu_state(ctx.model)
        checkpoint["metrics"] = {
            "best_epoch": epoch,
            "train_loss": entry["loss"],
            "train_accuracy": entry["accuracy"],
            **{key: entry[key] for key in ("val_loss", "val_accuracy") if key in entry},
        }
    else:
        standing.stale += 1
    finished = epoch == config.epochs or bool(config.patience and standing.stale >= config.patience)
    checkpoint["stopped_early"] = epoch < config.epochs and finished
    if finished:
        # A finished checkpoint carries only what inference needs (it ships, so keep it small).
        checkpoint["optimizer"] = checkpoint["resume"] = None
    else:
        _keep_resume_state(checkpoint, ctx, standing)
    return finished


def _keep_resume_state(checkpoint: Checkpoint, ctx: EpochContext, standing: Standing) -> None:
    """What a resumed run continues from: the latest weights, optimizer, scheduler and standing.
    Kept from the start of a run, so a run cancelled before its first epoch ends resumes too
    (a checkpoint without it counts as finished)."""
    checkpoint["optimizer"] = ctx.optimizer.state_dict()
    checkpoint["resume"] = {
        "model": cpu_state(ctx.model),
        "scheduler": ctx.scheduler.state_dict() if ctx.scheduler is not None else None,
        "best_score": standing.best_score,
        "stale": standing.stale,
    }

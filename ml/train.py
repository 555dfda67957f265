"""Training: plain train_one_epoch / evaluate functions, early stopping, resumable checkpoints.

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


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    *,
    batch_size: int,
    normalisation: str,
    augment: bool,
    small_faces: float = 0.0,
    class_weight: torch.Tensor | None,
    sample_weight: torch.Tensor | None,
    label_smoothing: float,
    soft_targets: torch.Tensor | None = None,
    amp_dtype: torch.dtype | None,
    generator: torch.Generator,
    on_batch: Callable[[int, int, float, float], bool] | None = None,
) -> dict:
    """One pass over `order` (indices into images/labels on the model's device).

    `on_batch(step, steps, mean_loss, accuracy)` runs after every batch and returns True to stop
    early (cancel). With `soft_targets` (N, C) the loss is taken against those distributions
    instead of the labels (accuracy stays against the labels).
    Returns {"loss", "accuracy", "steps", "cancelled"}.
    """
    model.train()
    device = images.device
    n = len(order)
    # Dropping a short last batch keeps batch-norm statistics sane (a batch of one breaks it).
    steps = max(1, n // batch_size) if n > batch_size else 1
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    cancelled = False
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        y = labels[index]
        x = augment_batch(images[index], generator, small_faces) if augment else images[index]
        with autocast(device, amp_dtype):
            logits = model(model_input(x, normalisation))
        losses = F.cross_entropy(
            logits.float(),
            soft_targets[index] if soft_targets is not None else y,
            weight=class_weight,
            label_smoothing=label_smoothing,
            reduction="none",
        )
        loss = (
            (losses * sample_weight[index]).mean() if sample_weight is not None else losses.mean()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * len(index)
        total_correct += (logits.argmax(1) == y).sum()
        seen += len(index)
        if on_batch is not None and on_batch(
            step + 1, steps, total_loss.item() / seen, total_correct.item() / seen
        ):
            cancelled = True
            break
    return {
        "loss": total_loss.item() / max(seen, 1),
        "accuracy": total_correct.item() / max(seen, 1),
        "steps": steps,
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


def _shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of an epoch's order, every share of length ceil(n / world).

    Padded with the order's first indices as DistributedSampler does: unequal shares give the
    ranks different step counts, and the rank that finishes first dies (gloo) or hangs (NCCL)
    in the next collective.
    """
    shard = math.ceil(len(order) / world)
    padded = order.repeat(math.ceil(shard * world / len(order)))[: shard * world]
    return padded[rank::world]


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
    """
    _check_sets(train_set, val_set)
    rank, world = _distributed()
    previous = None
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        previous = load_checkpoint(checkpoint_path)
        if list(previous["classes"]) != list(train_set.classes):
            raise CheckpointError("checkpoint classes differ from the training data's classes")
        if previous.get("resume") is None:
            return previous  # already finished: nothing left to run
        config = dataclasses.replace(TrainConfig(**previous["config"]), device=config.device)
    config.validate()
    device = resolve_device(config.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    amp_dtype = autocast_dtype(device, config.precision)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    if train_set.images.shape[1:] != (config.input_size, config.input_size):
        raise DataError(
            f"images are {train_set.images.shape[1:]} but the input size is {config.input_size}"
        )

    model = prepare_model(
        build_model(config.arch, len(train_set.classes), config.input_size), device
    )
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    elif device.type == "cuda" and torch.cuda.device_count() > 1:
        net = nn.DataParallel(model)

    images = torch.from_numpy(train_set.images).to(device)
    labels = torch.from_numpy(train_set.labels).to(device)
    val_images = torch.from_numpy(val_set.images).to(device) if val_set is not None else None
    val_labels = torch.from_numpy(val_set.labels).to(device) if val_set is not None else None
    sample_weight = _per_sample(sample_weights, len(train_set), "sample weights", device)
    draw = _per_sample(sampler_weights, len(train_set), "sampler weights", "cpu")
    expected = (len(train_set), len(train_set.classes))
    if soft_targets is not None and soft_targets.shape != expected:
        raise DataError(f"soft targets must have shape {expected}, got {soft_targets.shape}")
    targets = torch.from_numpy(soft_targets).to(device) if soft_targets is not None else None
    class_weight = None
    if config.class_weighting:
        counts = np.bincount(train_set.labels, minlength=len(train_set.classes)).astype(np.float64)
        class_weight = torch.as_tensor(
            len(train_set) / (len(counts) * counts), dtype=torch.float32, device=device
        )

    n = len(train_set)
    shard = math.ceil(n / world)
    steps_per_epoch = max(1, shard // config.batch_size) if shard > config.batch_size else 1
    optimizer = _make_optimizer(model, config)
    scheduler = _make_scheduler(optimizer, config, config.epochs * steps_per_epoch)

    checkpoint = new_checkpoint(model, train_set.classes, config, device, world)
    best_score, stale = -math.inf, 0
    if previous is not None:
        for key in ("metrics", "history", "epoch", "state_dict"):
            checkpoint[key] = previous[key]
        unwrap(model).load_state_dict(previous["resume"]["model"])
        optimizer.load_state_dict(previous["optimizer"])
        if scheduler is not None and previous["resume"]["scheduler"] is not None:
            scheduler.load_state_dict(previous["resume"]["scheduler"])
        best_score = previous["resume"]["best_score"]
        stale = previous["resume"]["stale"]

    started = time.perf_counter()
    done_steps, first_epoch = 0, checkpoint["epoch"]
    val_seconds = 0.0
    last_val = checkpoint["metrics"].get("val_accuracy")
    total_steps = (config.epochs - first_epoch) * steps_per_epoch

    def report(epoch: int, step: int, loss: float, acc: float, phase: str = "train") -> None:
        if progress is None or rank != 0:
            return
        elapsed = time.perf_counter() - started
        per_step = elapsed / max(done_steps, 1)
        remaining_epochs = config.epochs - epoch + (1 if step < steps_per_epoch else 0)
        eta = (total_steps - done_steps) * per_step + remaining_epochs * val_seconds
        progress(
            Progress(
                epoch=epoch,
                epochs=config.epochs,
                step=step,
                steps=steps_per_epoch,
                loss=loss,
                accuracy=acc,
                val_accuracy=last_val,
                eta_seconds=max(eta, 0.0),
                fraction=((epoch - 1) * steps_per_epoch + step) / (config.epochs * steps_per_epoch),
                phase=phase,
            )
        )

    def stop_requested() -> bool:
        stop = should_stop is not None and rank == 0 and bool(should_stop())
        if world > 1:
            import torch.distributed as dist

            flag = torch.tensor([int(stop)], device=device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    for epoch in range(first_epoch + 1, config.epochs + 1):
        # Orders and augmentation depend only on (seed, epoch, rank): a resumed run repeats them.
        order_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        if draw is not None:
            order = torch.multinomial(draw, n, replacement=True, generator=order_gen)
        else:
            order = torch.randperm(n, generator=order_gen)
        order = _shard(order, rank, world).to(device)
        aug_gen = torch.Generator(device=device).manual_seed(
            config.seed * 100_003 + epoch * 1009 + rank
        )

        def on_batch(step, steps, loss, acc, epoch=epoch):
            nonlocal done_steps
            done_steps += 1
            report(epoch, step, loss, acc)
            return stop_requested()

        result = train_one_epoch(
            net,
            optimizer,
            scheduler,
            images,
            labels,
            order,
            batch_size=config.batch_size,
            normalisation=config.normalisation,
            augment=config.augment,
            small_faces=config.small_faces,
            class_weight=class_weight,
            sample_weight=sample_weight,
            label_smoothing=config.label_smoothing,
            soft_targets=targets,
            amp_dtype=amp_dtype,
            generator=aug_gen,
            on_batch=on_batch,
        )
        if result["cancelled"]:
            checkpoint["cancelled"] = True
            break
        entry = {
            "epoch": epoch,
            "loss": result["loss"],
            "accuracy": result["accuracy"],
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        score = -result["loss"]
        if val_images is not None:
            t0 = time.perf_counter()
            val = evaluate(
                model,
                val_images,
                val_labels,
                normalisation=config.normalisation,
                amp_dtype=amp_dtype,
                blur=config.input_blur,
            )
            val_seconds = time.perf_counter() - t0
            entry.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            score = last_val = val["accuracy"]
        checkpoint["history"].append(entry)
        checkpoint["epoch"] = epoch
        if score > best_score:
            best_score, stale = score, 0
            checkpoint["state_dict"] = cpu_state(model)
            checkpoint["metrics"] = {
                "best_epoch": epoch,
                "train_loss": result["loss"],
                "train_accuracy": result["accuracy"],
                **(
                    {"val_loss": entry["val_loss"], "val_accuracy": entry["val_accuracy"]}
                    if val_images is not None
                    else {}
                ),
            }
        else:
            stale += 1
        report(epoch, steps_per_epoch, result["loss"], result["accuracy"], "val")
        finished = epoch == config.epochs or (config.patience and stale >= config.patience)
        checkpoint["stopped_early"] = bool(epoch < config.epochs and finished)
        if not finished:
            checkpoint["optimizer"] = optimizer.state_dict()
            checkpoint["resume"] = {
                "model": cpu_state(model),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "best_score": best_score,
                "stale": stale,
            }
        else:
            # A finished checkpoint carries only what inference needs (it ships, so keep it small).
            checkpoint["optimizer"] = checkpoint["resume"] = None
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(checkpoint_path, checkpoint)
        if finished or stop_requested():
            checkpoint["cancelled"] = not finished
            break
    if checkpoint["cancelled"] and checkpoint_path is not None and rank == 0:
        save_checkpoint(checkpoint_path, checkpoint)
    return checkpoint

"""Training: plain train_one_epoch / evaluate functions, early stopping, complete checkpoints.

The whole dataset lives on the training device as uint8; batches are sliced, augmented and
normalised there, so no image is decoded or touched by PIL after loading.
"""

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.data import ImageSet
from ml.errors import CheckpointError, DataError, MLError
from ml.labels import default_state_mapping
from ml.models import DEFAULT_ARCH, build_model
from ml.preprocess import NORMALISATIONS, normalise

CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run; stored in every checkpoint."""

    arch: str = DEFAULT_ARCH
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) | "adamw"
    scheduler: str = "onecycle"  # "onecycle" | "cosine" | "none"
    patience: int = 0  # epochs without val improvement before stopping; 0 = never
    augment: bool = True
    class_weighting: bool = False
    label_smoothing: float = 0.1
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    normalisation: str = "standardize"
    input_size: int = 48
    # "auto": bf16 autocast on CUDA and on CPUs with AMX or AVX512-BF16 (several times faster
    # there), float32 elsewhere; "fp32" forces float32.
    precision: str = "auto"
    # Gaussian blur (pixels) applied to validation and serving inputs, never to training
    # images: for a training set blurrier than the photos served (FER2013 train here).
    input_blur: float = 0.0

    def validate(self) -> None:
        """Raise MLError for values that cannot work."""
        if self.epochs < 1 or self.batch_size < 1:
            raise MLError("epochs and batch size must be at least 1")
        if self.lr <= 0:
            raise MLError("learning rate must be positive")
        if self.optimizer not in ("sgd", "adamw"):
            raise MLError(f"unknown optimizer {self.optimizer!r}; choose sgd or adamw")
        if self.scheduler not in ("onecycle", "cosine", "none"):
            raise MLError(f"unknown scheduler {self.scheduler!r}; choose onecycle, cosine or none")
        if self.normalisation not in NORMALISATIONS:
            raise MLError(f"unknown normalisation {self.normalisation!r}")
        if self.precision not in ("auto", "fp32"):
            raise MLError(f"unknown precision {self.precision!r}; choose auto or fp32")
        if not 0 <= self.label_smoothing < 1:
            raise MLError("label smoothing must be in [0, 1)")


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


# --- devices and precision ------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MLError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MLError("CUDA was requested but no GPU is visible")
    return device


@cache
def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions faster than float32 on this CPU.

    True with AMX tiles (several times faster) or AVX512-BF16 dot products (2.8x for an
    edu-vgg-s training step on a 2-core AMD EPYC, measured 2026-12-02).
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            return any(
                line.startswith("flags") and {"amx_bf16", "avx512_bf16"} & set(line.split())
                for line in handle
            )
    except OSError:
        return False


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device, or None for plain float32."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for the dtype (a no-op context for float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model to its device in channels-last layout (oneDNN's and cuDNN's fast path)."""
    return model.to(device).to(memory_format=torch.channels_last)


def model_input(batch: torch.Tensor, normalisation: str, blur: float = 0.0) -> torch.Tensor:
    """Normalised channels-last model input from uint8 pixels or augmented floats in [0, 1]."""
    return normalise(batch, normalisation, blur).contiguous(memory_format=torch.channels_last)


# --- augmentation ---------------------------------------------------------------------------


def augment_batch(batch_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift, scale, small rotation, horizontal flip, brightness/contrast and erasing.

    All of it is one affine_grid/grid_sample plus elementwise ops on the whole batch, on the
    batch's device. Returns floats in [0, 1] of shape (N, 1, S, S).
    """
    x = batch_uint8.unsqueeze(1).float() / 255.0
    n, _, h, w = x.shape
    dev = x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, device=dev, generator=generator) * (high - low) + low

    angle = uniform(-10, 10) * math.pi / 180
    scale = uniform(0.9, 1.1)
    flip = torch.where(torch.rand(n, device=dev, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # The sampling grid of the affine map, written out elementwise: F.affine_grid's batched
    # matmul with an inner size of 3 is several times slower on the CPU.
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=dev).view(1, h, 1)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=dev).view(1, 1, w)
    tx, ty = uniform(-0.1, 0.1).view(n, 1, 1), uniform(-0.1, 0.1).view(n, 1, 1)
    cos, sin, flip = cos.view(n, 1, 1), sin.view(n, 1, 1), flip.view(n, 1, 1)
    grid = torch.stack([cos * flip * xs - sin * ys + tx, sin * flip * xs + cos * ys + ty], -1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    mean = x.mean(dim=(2, 3), keepdim=True)
    contrast = uniform(0.8, 1.2).view(n, 1, 1, 1)
    brightness = uniform(-0.1, 0.1).view(n, 1, 1, 1)
    x = ((x - mean) * contrast + mean + brightness).clamp_(0, 1)

    # Random erasing of one rectangle in a quarter of the images: expressions are read from
    # several face regions, so the model should not depend on one of them being visible. (More
    # erasing and stronger geometry slowed learning too much for CPU-sized budgets: measured.)
    eh = (uniform(0.1, 0.3) * h).long().view(n, 1, 1)
    ew = (uniform(0.1, 0.3) * w).long().view(n, 1, 1)
    top = (uniform(0, 1) * (h - eh.view(n))).long().view(n, 1, 1)
    left = (uniform(0, 1) * (w - ew.view(n))).long().view(n, 1, 1)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (rows >= top) & (rows < top + eh) & (cols >= left) & (cols < left + ew)
    box &= (torch.rand(n, device=dev, generator=generator) < 0.25).view(n, 1, 1)
    fill = torch.rand(n, 1, 1, device=dev, generator=generator).expand(n, h, w)
    return torch.where(box.unsqueeze(1), fill.unsqueeze(1), x)


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
    class_weight: torch.Tensor | None,
    sample_weight: torch.Tensor | None,
    label_smoothing: float,
    amp_dtype: torch.dtype | None,
    generator: torch.Generator,
    on_batch: Callable[[int, int, float, float], bool] | None = None,
) -> dict:
    """One pass over `order` (indices into images/labels on the model's device).

    `on_batch(step, steps, mean_loss, accuracy)` runs after every batch and returns True to stop
    early (cancel). Returns {"loss", "accuracy", "steps", "cancelled"}.
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
        x = augment_batch(images[index], generator) if augment else images[index]
        with autocast(device, amp_dtype):
            logits = model(model_input(x, normalisation))
        losses = F.cross_entropy(
            logits.float(),
            y,
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


# --- checkpoints ----------------------------------------------------------------------------


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel / DistributedDataParallel wrapper."""
    return (
        model.module
        if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel)
        else model
    )


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """Write a checkpoint atomically (temporary file + os.replace), so a crash never leaves half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def new_checkpoint(
    model: nn.Module, classes: list[str], config: TrainConfig, device="cpu", world_size: int = 1
) -> dict:
    """A complete checkpoint of a model's current weights, before any epoch has run."""
    return {
        "format": CHECKPOINT_FORMAT,
        "arch": config.arch,
        "classes": list(classes),
        "input_size": config.input_size,
        "normalisation": config.normalisation,
        "input_blur": config.input_blur,
        "state_mapping": default_state_mapping(classes),
        "config": dataclasses.asdict(config),
        "metrics": {},
        "history": [],
        "epoch": 0,
        "device": str(device),
        "world_size": world_size,
        "stopped_early": False,
        "cancelled": False,
        "state_dict": _cpu_state(model),
        "optimizer": None,
        "resume": None,
    }


REQUIRED_KEYS = ("arch", "state_dict", "classes", "input_size", "normalisation")


def load_checkpoint(path: str | Path) -> dict:
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
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        raise CheckpointError(f"{str(path)!r} is not an EduMood checkpoint")
    return checkpoint


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """Build the checkpoint's architecture and load its (best) weights."""
    model = build_model(checkpoint["arch"], len(checkpoint["classes"]), checkpoint["input_size"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit architecture {checkpoint['arch']!r}") from exc
    return model


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
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
) -> dict:
    """Train a model and return its checkpoint dict (best epoch's weights by val accuracy).

    With `checkpoint_path`, the checkpoint is saved atomically after every epoch, so stopping at
    any point leaves the best weights so far plus what `resume=True` needs to continue (a
    resumed run keeps the checkpoint's config). `sample_weights` scale each sample's loss;
    `sampler_weights` draw each epoch's samples with replacement in proportion to them.
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
        order = order[rank::world].to(device)
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
            class_weight=class_weight,
            sample_weight=sample_weight,
            label_smoothing=config.label_smoothing,
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
            checkpoint["state_dict"] = _cpu_state(model)
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
                "model": _cpu_state(model),
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


# --- command line ---------------------------------------------------------------------------


def add_parser(subparsers) -> None:
    """Register `python -m ml train`."""
    from ml import cli

    parser = subparsers.add_parser("train", help="train a model on an image folder or zip")
    parser.add_argument("--data", required=True, help="folder of class folders, or a zip of one")
    parser.add_argument("--val", help="validation folder (default: a stratified split of --data)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of --data held out when --val is absent (0: no validation)",
    )
    parser.add_argument("--out", required=True, help="checkpoint path (written after every epoch)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    cli.add_train_options(parser)
    cli.add_json_flag(parser)
    parser.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    from ml import cli
    from ml.data import load_images, stratified_split

    config = cli.config_from_args(args)
    config.validate()
    data = load_images(cli.require_path(args.data, "dataset"), size=config.input_size)
    if args.val:
        train_set = data
        val_set = load_images(cli.require_path(args.val, "validation dataset"), config.input_size)
    elif args.val_fraction > 0:
        train_set, val_set = stratified_split(data, args.val_fraction, config.seed)
    else:
        train_set, val_set = data, None
    progress = cli.TrainProgress()
    try:
        checkpoint = train(
            train_set,
            val_set,
            config,
            progress=progress,
            checkpoint_path=args.out,
            resume=args.resume,
        )
    finally:
        progress.close()
    errors = data.errors + (val_set.errors if args.val and val_set is not None else [])
    payload = {
        "out": str(args.out),
        "arch": checkpoint["arch"],
        "classes": checkpoint["classes"],
        "epochs_run": checkpoint["epoch"],
        "metrics": checkpoint["metrics"],
        "history": checkpoint["history"],
        "stopped_early": checkpoint["stopped_early"],
        "cancelled": checkpoint["cancelled"],
        "train_size": len(train_set),
        "val_size": len(val_set) if val_set is not None else 0,
        "unreadable_files": [{"file": f, "reason": r} for f, r in errors],
    }
    m = checkpoint["metrics"]
    best = f"val accuracy {m['val_accuracy']:.4f}" if "val_accuracy" in m else "no validation"
    cli.emit(
        args,
        payload,
        f"trained {checkpoint['arch']} for {checkpoint['epoch']} epoch(s) on {len(train_set)} "
        f"images: best epoch {m.get('best_epoch')}, {best}; saved {args.out}"
        + (f"; {len(errors)} unreadable file(s) skipped" if errors else ""),
    )
    return 0

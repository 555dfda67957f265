"""`python -m ml train`: train a model on an image folder or zip, checkpointing every epoch."""

from ml.checkpoint import load_checkpoint
from ml.cli import common
from ml.data import crowd_targets, load_images, stratified_split
from ml.options import SplitOptions
from ml.predict import Classifier, distillation_targets, resolve_weights
from ml.train import train

# The CLI may train without validation (the epoch with the lowest training loss is kept); a web
# job may not, since its model version is scored on those images.
VAL_FRACTION_NOTE = {"val_fraction": " (of --data, when --val is absent; 0: none)"}


def add_parser(subparsers) -> None:
    """Register `python -m ml train`."""
    parser = subparsers.add_parser("train", help="train a model on an image folder or zip")
    parser.add_argument("--data", required=True, help="folder of class folders, or a zip of one")
    parser.add_argument("--val", help="validation folder (default: a stratified split of --data)")
    common.add_options(parser, SplitOptions, notes=VAL_FRACTION_NOTE)
    parser.add_argument("--out", required=True, help="checkpoint path (written after every epoch)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    targets = parser.add_mutually_exclusive_group()
    targets.add_argument(
        "--crowd-votes",
        help="CSV of crowd vote counts per training image (FER+ columns) used as soft targets; "
        "pass it again with --resume",
    )
    targets.add_argument(
        "--teacher",
        help="checkpoint (or 'default') whose mirror-averaged probabilities on the training "
        "images are soft targets (distillation); pass it again with --resume",
    )
    parser.add_argument(
        "--crowd-weight",
        type=float,
        default=0.5,
        help="share of each soft target taken from the votes, the rest from the label "
        "(default: 0.5)",
    )
    parser.add_argument(
        "--teacher-weight",
        type=float,
        default=0.5,
        help="share of each soft target taken from the teacher, the rest from the label "
        "(default: 0.5)",
    )
    common.add_train_options(parser)
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    config = common.config_from_args(args)
    config.validate()
    votes = common.require_path(args.crowd_votes, "crowd votes") if args.crowd_votes else None
    data = load_images(common.require_path(args.data, "dataset"), size=config.input_size)
    if args.val:
        train_set = data
        val_set = load_images(
            common.require_path(args.val, "validation dataset"), config.input_size
        )
    elif args.val_fraction > 0:
        train_set, val_set = stratified_split(data, args.val_fraction, config.seed)
    else:
        train_set, val_set = data, None
    if votes:
        soft_targets = crowd_targets(train_set, votes, args.crowd_weight)
    elif args.teacher:
        teacher = Classifier(
            load_checkpoint(resolve_weights(args.teacher)), config.device, mirror_average=True
        )
        soft_targets = distillation_targets(train_set, teacher, args.teacher_weight)
        del teacher  # its networks are not needed for training: free their memory first
    else:
        soft_targets = None
    progress = common.TrainProgress()
    try:
        checkpoint = train(
            train_set,
            val_set,
            config,
            progress=progress,
            soft_targets=soft_targets,
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
    common.emit(
        args,
        payload,
        f"trained {checkpoint['arch']} for {checkpoint['epoch']} epoch(s) on {len(train_set)} "
        f"images: best epoch {m.get('best_epoch')}, {best}; saved {args.out}"
        + (f"; {len(errors)} unreadable file(s) skipped" if errors else ""),
    )
    return 0

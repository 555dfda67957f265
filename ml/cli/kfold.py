"""`python -m ml kfold`: stratified (group-aware) k-fold cross-validation of a recipe."""

from ml.cli import common
from ml.cv import kfold
from ml.data import attach_attributes, load_images
from ml.errors import DataError
from ml.options import REPORTED_METRICS, KFoldOptions, SplitOptions


def add_parser(subparsers) -> None:
    """Register `python -m ml kfold`."""
    parser = subparsers.add_parser("kfold", help="stratified k-fold cross-validation")
    parser.add_argument("--data", required=True, help="folder of class folders, or a zip")
    parser.add_argument("--attributes", help="CSV with a `file` column (for --group-column)")
    common.add_options(parser, KFoldOptions)
    # The test fold is never used to choose the epoch: that would inflate its score.
    common.add_options(parser, SplitOptions, notes={"val_fraction": " of each fold (0: none)"})
    common.add_train_options(parser)
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def format_result(result: dict) -> str:
    """A per-fold table and the mean ± std line."""
    lines = [f"{'fold':>4} {'n_test':>6} " + " ".join(f"{m:>15}" for m in REPORTED_METRICS)]
    for fold in result["folds"]:
        lines.append(f"{fold['fold'] + 1:>4} {fold['n_test']:>6} "
                     + " ".join(f"{fold[m]:>15.4f}" for m in REPORTED_METRICS))  # fmt: skip
    if result["folds"]:
        cells = []
        for m in REPORTED_METRICS:
            std = result["std"][m]
            cells.append(f"{result['mean'][m]:.4f}" + (f"±{std:.4f}" if std is not None else ""))
        lines.append(f"{'mean':>4} {'':>6} " + " ".join(f"{c:>15}" for c in cells))
    if result["cancelled"]:
        lines.append(f"cancelled after {len(result['folds'])} of {result['k']} folds")
    return "\n".join(lines)


def run(args) -> int:
    options = common.options_from_args(args, KFoldOptions)
    if options.group_column and not args.attributes:
        raise DataError("--group-column needs --attributes")
    config = common.config_from_args(args)
    config.validate()
    data = load_images(common.require_path(args.data, "dataset"), size=config.input_size)
    if args.attributes:
        data = attach_attributes(data, args.attributes)
    progress = common.RunsProgress([f"fold {i + 1}/{options.k}" for i in range(options.k)])
    try:
        result = kfold(data, config, k=options.k, seed=config.seed,
                       group_column=options.group_column or None, progress=progress,
                       val_fraction=args.val_fraction)  # fmt: skip
    finally:
        progress.close()
    result["unreadable_files"] = [{"file": f, "reason": r} for f, r in data.errors]
    common.emit(args, result, format_result(result))
    return 0

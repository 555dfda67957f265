"""`python -m ml mitigate`: retrain balanced by one attribute and audit before and after."""

from pathlib import Path

from ml.checkpoint import save_checkpoint
from ml.cli import common
from ml.cli.audit import add_data_options, attribute_source, load_attributed
from ml.data import stratified_split
from ml.fairness import mitigate
from ml.options import MitigateOptions, SplitOptions


def add_parser(subparsers) -> None:
    """Register `python -m ml mitigate`."""
    parser = subparsers.add_parser(
        "mitigate", help="retrain balanced by an attribute and audit before / after"
    )
    add_data_options(parser)
    common.add_options(parser, MitigateOptions)
    parser.add_argument("--out", required=True, help="path of the mitigated checkpoint")
    parser.add_argument("--baseline", help="existing baseline checkpoint (default: train one "
                        "and save it as OUT's name + .baseline.pt)")  # fmt: skip
    parser.add_argument("--eval", help="evaluation folder whose files the CSV also covers "
                        "(default: a stratified split of --data)")  # fmt: skip
    parser.add_argument(
        "--eval-fraction",
        type=float,
        default=0.3,
        help="share of --data held out for the audits when --eval is absent",
    )
    common.add_options(parser, SplitOptions, notes={"val_fraction": " (0: none)"})
    common.add_train_options(parser)
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    config = common.config_from_args(args)
    config.validate()
    data = load_attributed(args.data, args, config.input_size)
    # FER2013 has attributes for its val split only, so by default the attributed set is split
    # into a training part and a held-out part for the two audits.
    if args.eval:
        train_part, eval_set = data, load_attributed(args.eval, args, config.input_size)
        split = {"eval": str(args.eval)}
    else:
        train_part, eval_set = stratified_split(data, args.eval_fraction, config.seed)
        split = {"eval": f"stratified {args.eval_fraction:.0%} of --data (seed {config.seed})"}
    if args.val_fraction > 0:
        train_set, val_set = stratified_split(train_part, args.val_fraction, config.seed)
    else:
        train_set, val_set = train_part, None
    split.update(n_train=len(train_set), n_val=len(val_set or ()), n_eval=len(eval_set))

    titles = ["mitigated model"] if args.baseline else ["baseline model", "mitigated model"]
    progress = common.RunsProgress(titles)
    try:
        result = mitigate(
            train_set, val_set, eval_set, args.attribute, args.strategy, config,
            baseline_checkpoint=args.baseline, progress=progress, source=attribute_source(args),
        )  # fmt: skip
    finally:
        progress.close()
    checkpoints = result.pop("checkpoints")
    out = Path(args.out)
    result["split"] = split
    result["out"] = str(out) if checkpoints["mitigated"] is not None else None
    result["baseline"] = args.baseline
    if not args.baseline and checkpoints["baseline"] is not None:
        result["baseline"] = str(out.with_name(out.stem + ".baseline.pt"))
        save_checkpoint(result["baseline"], checkpoints["baseline"])
    if checkpoints["mitigated"] is not None:
        save_checkpoint(out, checkpoints["mitigated"])
    common.emit(args, result, _format_mitigation(result))
    return 1 if result["cancelled"] else 0


def _format_mitigation(result: dict) -> str:
    if result["cancelled"]:
        return "cancelled"
    lines = [
        f"{result['strategy']} by {result['attribute']}: overall accuracy "
        f"{result['overall']['accuracy_before']:.4f} -> {result['overall']['accuracy_after']:.4f}",
        f"{'group':>16} {'n':>6} {'before':>8} {'after':>8} {'change':>8}",
    ]
    for group, e in result["comparison"].items():
        lines.append(f"{group[:16]:>16} {e['n']:>6} {e['accuracy_before']:>8.4f} "
                     f"{e['accuracy_after']:>8.4f} {e['accuracy_change']:>+8.4f}"
                     + (" small" if e["small"] else ""))  # fmt: skip
    d = result["disparity"]
    lines.append(f"accuracy gap between groups {d['accuracy_difference_before']:.4f} -> "
                 f"{d['accuracy_difference_after']:.4f}; findings "
                 f"{result['findings']['before']} -> {result['findings']['after']}")  # fmt: skip
    lines.append(f"mitigated checkpoint: {result['out']}  baseline: {result['baseline']}")
    return "\n".join(lines)

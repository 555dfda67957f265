"""`python -m ml audit`: per-subgroup metrics of a checkpoint, with intervals and findings."""

from pathlib import Path

from ml.cli import common
from ml.data import ImageSet, attach_attributes, load_images
from ml.fairness import BOOTSTRAP_RESAMPLES, audit_classifier
from ml.options import AuditOptions
from ml.predict import Classifier


def add_parser(subparsers) -> None:
    """Register `python -m ml audit`."""
    parser = subparsers.add_parser("audit", help="per-subgroup metrics of a checkpoint")
    parser.add_argument("--weights", required=True, help="checkpoint path or 'default'")
    add_data_options(parser)
    common.add_options(parser, AuditOptions, names=["attributes"])
    parser.add_argument(
        "--n-boot", type=int, default=BOOTSTRAP_RESAMPLES, help="bootstrap resamples"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    common.add_json_flag(parser)
    parser.set_defaults(func=run)


# Audit options offered beside the data options (mitigate takes them too, but ml.fairness.mitigate
# audits with their defaults).
GAP_OPTIONS = ("min_group_size", "threshold")


def add_data_options(parser) -> None:
    """The dataset, attributes and audit options shared by audit and mitigate."""
    parser.add_argument("--data", required=True, help="folder of class folders, or a zip")
    parser.add_argument("--attributes", required=True, help="CSV with a `file` column")
    parser.add_argument(
        "--age-bins",
        action="store_true",
        help="add age_bin (Young <28, Mid 28-54, Senior >=55) from age_estimate",
    )
    parser.add_argument("--source", help="where the attribute labels came from, for the report "
                        "(e.g. 'model-inferred (DeepFace)')")  # fmt: skip
    common.add_options(parser, AuditOptions, names=GAP_OPTIONS)


def attribute_source(args) -> str:
    """Where the attribute labels came from, as the report states it."""
    # Never claim provenance the CSV does not state: FER2013's labels are DeepFace guesses.
    return args.source or f"{Path(args.attributes).name} (provenance not stated; may be inferred)"


def load_attributed(path: str, args, size: int) -> ImageSet:
    """A dataset with the attributes CSV of the arguments joined on."""
    data = load_images(common.require_path(path, "dataset"), size=size)
    return attach_attributes(data, common.require_path(args.attributes, "attributes CSV"),
                             age_bins=args.age_bins)  # fmt: skip


def format_audit(report: dict) -> str:
    """One table per attribute: groups with size, accuracy, interval, gap to overall."""
    lines = [f"n={report['n']}  accuracy={report['accuracy']:.4f}  labels: {report['source']}"]
    for column, table in report["attributes"].items():
        overall = table["overall"]
        lines.append(f"\n{column}: overall accuracy {overall['accuracy']:.4f} "
                     f"[{overall['ci_low']:.3f}, {overall['ci_high']:.3f}] (n={overall['n']}"
                     f", {table['missing']} missing)")  # fmt: skip
        lines.append(f"{'group':>16} {'n':>6} {'acc':>7} {'95% CI':>15} {'vs overall':>10} "
                     f"{'vs best':>8} {'macro_f1':>8}")  # fmt: skip
        for group, e in table["groups"].items():
            flag = " small" if e["small"] else ""
            lines.append(
                f"{group[:16]:>16} {e['n']:>6} {e['accuracy']:>7.4f} "
                f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}] "
                f"{e['accuracy_difference_to_overall']:>+10.4f} "
                f"{e['accuracy_difference_to_best']:>+8.4f} {e['macro_f1']:>8.4f}{flag}"
            )
    lines.append("")
    for f in report["findings"]:
        lines.append(f"FINDING {f['attribute']}={f['group']}: accuracy {f['accuracy']:.4f} is "
                     f"{-f['difference']:.4f} below overall (95% CI up to {f['ci_high']:.4f}, "
                     f"n={f['n']})")  # fmt: skip
    if not report["findings"]:
        lines.append("no findings")
    return "\n".join(lines)


def run(args) -> int:
    classifier = Classifier.load(args.weights, device=args.device)
    data = load_attributed(args.data, args, classifier.input_size)
    options = common.options_from_args(args, AuditOptions)
    report = audit_classifier(
        classifier, data, options.attributes or None, source=attribute_source(args),
        min_group_size=options.min_group_size, threshold=options.threshold, n_boot=args.n_boot,
        seed=args.seed,
    )  # fmt: skip
    report["weights"] = str(args.weights)
    report["unreadable_files"] = [{"file": f, "reason": r} for f, r in data.errors]
    common.emit(args, report, format_audit(report))
    return 0

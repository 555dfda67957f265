"""Every job kind's options, each defined once: a field's type, default, choices, bounds and help.

Training's are ml.recipe.TrainConfig; the other kinds' are below. The CLI options
(ml/cli/common.add_options), the web forms (classifier/forms.option_fields), the API's params
schema (derived from the forms) and the job handlers (from_params) all derive from these
classes, so a default changed here changes everywhere at once.

Torch-free on purpose: the web process builds its forms and schema from this module and must
not load torch (ml.cv and ml.fairness, which use these options, do).
"""

import dataclasses
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any

from ml.errors import MLError


def option(
    default=MISSING, help: str = "", *, choices=None, minimum=None, maximum=None,
    machine=False, flag=None, default_text=None,
):  # fmt: skip
    """A job option. Without a default it is required. `machine` options say where a run
    executes, not what it computes: the CLI offers them, web jobs take them from the worker's
    settings. `flag` is the CLI's spelling when it differs from the name; `default_text` is the
    default in words when it depends on other options."""
    metadata = {"help": help, "choices": choices, "min": minimum, "max": maximum}
    metadata |= {"machine": machine, "flag": flag, "default_text": default_text}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Option:
    """One field of an options class as the CLI, forms, API schema and handlers need it."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None
    minimum: float | None
    maximum: float | None
    machine: bool
    flag: str | None
    text: str | None

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def is_list(self) -> bool:
        """A list of names (tuple[str, ...]): comma-separated in the CLI and the pages."""
        return typing.get_origin(self.type) is tuple

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def cli_dest(self) -> str:
        """The argparse attribute: the flag's, as the name may mean something else in the CLI
        (`--attributes` is audit's CSV there, the columns are `--columns`)."""
        return self.cli_flag[2:].replace("-", "_")

    @property
    def default_text(self) -> str:
        """The default as the CLI's and the forms' help show it."""
        return self.text or str(self.default)


def options_of(options_class, machine: bool = False) -> list[Option]:
    """The fields of an options class in order; with `machine`, also those that pick hardware."""
    return [
        Option(
            name=f.name,
            type=f.type,
            default=f.default,
            help=f.metadata["help"],
            choices=f.metadata["choices"],
            minimum=f.metadata["min"],
            maximum=f.metadata["max"],
            machine=f.metadata["machine"],
            flag=f.metadata["flag"],
            text=f.metadata["default_text"],
        )  # fmt: skip
        for f in dataclasses.fields(options_class)
        if machine or not f.metadata["machine"]
    ]


def check(options) -> None:
    """Raise MLError for a value outside its option's choices or bounds."""
    fields = options_of(type(options), machine=True)
    # Choices first: an unknown choice may leave another option without its default to check.
    for o in fields:
        value = getattr(options, o.name)
        if o.choices and value not in o.choices:
            raise MLError(f"unknown {o.name} {value!r}; choose one of {', '.join(o.choices)}")
    for o in fields:
        value = getattr(options, o.name)
        if o.minimum is not None and value < o.minimum:
            raise MLError(f"{o.name} must be at least {o.minimum}, got {value}")
        if o.maximum is not None and value > o.maximum:
            raise MLError(f"{o.name} must be at most {o.maximum}, got {value}")


def from_params(options_class, params: dict):
    """The options a job's parameters give (None or absent: the default), typed."""
    values = {}
    for o in options_of(options_class):
        value = params.get(o.name)
        if value is not None:
            values[o.name] = tuple(value) if o.is_list else o.type(value)
    return options_class(**values)


@dataclass
class SplitOptions:
    """How training holds out the validation images that choose the epoch and score the model
    (train, and each fold's training part in k-fold)."""

    # 0.2, not 0.1: a school's upload of a few hundred faces keeps about 20 validation faces
    # per class at 20% (the epoch choice and the share correction are measured on them); a
    # FER2013-sized set still trains on 23,000 images.
    val_fraction: float = option(
        0.2, "share of the training images held out for validation", minimum=0.05, maximum=0.5
    )


# The metrics every k-fold fold (with their mean and std across folds) and every audited group
# report.
REPORTED_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1")


@dataclass
class KFoldOptions:
    """Stratified k-fold cross-validation of a training recipe (ml.cv.kfold)."""

    k: int = option(10, "number of folds", minimum=2, maximum=20, flag="--folds")
    group_column: str = option(
        "", "attribute with subject ids, keeping a subject's images in one fold"
    )


@dataclass
class AuditOptions:
    """Per-subgroup metrics of a model (ml.fairness.audit)."""

    attributes: tuple[str, ...] = option(
        (), "attribute columns to audit, comma-separated (empty: every categorical one)",
        flag="--columns",
    )  # fmt: skip
    # Below 30 a group's accuracy interval is too wide to compare: the usual floor for a
    # normal-ish sampling distribution of a proportion.
    min_group_size: int = option(
        30, "groups under this many images are marked small and never best",
        minimum=1,
    )  # fmt: skip
    # A finding also needs the group's whole interval below overall (ml.fairness.audit).
    threshold: float = option(
        0.05, "accuracy gap to overall that raises a finding", minimum=0.0, maximum=1.0
    )


STRATEGIES = ("rebalance", "reweight")


@dataclass
class MitigateOptions:
    """Retraining balanced by one attribute (ml.fairness.mitigate)."""

    attribute: str = option(help="attribute column to balance")
    strategy: str = option(
        "rebalance",
        "rebalance (oversample small groups) or reweight (scale each face's loss)",
        choices=STRATEGIES,
    )


# The face detector's named settings, as a classroom chooses one for its photos (the words are
# its page's): ml.detect.MODES holds what each sets. Here, torch-free, for the web's choices.
DETECTION_MODES = {
    "fast": "Fast",
    "thorough": "Thorough (more small and turned faces, slower)",
}
# The latency budget (a 1600 px photo of 30 faces in 1 s on 2 cores) is for "fast" (ml.detect).
DEFAULT_DETECTION_MODE = "fast"

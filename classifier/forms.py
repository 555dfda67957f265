"""Forms of the admin workflow. A job form is the rows it names plus the fields of its kind's
options, read from the job table (classifier.jobs.JOBS: ml.recipe.TrainConfig and ml.options,
each defined once): the pages render them, the API derives a typed params schema per kind from
them and validates
`{"kind", "dataset_version", "model_version", "params"}` through them, so both accept exactly
the same jobs."""

from django import forms

from ml.options import options_of
from ml.recipe import TrainConfig

from .choices import JobKind
from .jobs import JOBS
from .models import AttributeSource, DatasetVersion, ModelVersion

FACE_CROP_CHOICES = [
    ("auto", "Detect and crop faces in photos (images larger than face crops)"),
    ("always", "Detect and crop faces in every image"),
    ("never", "Images are already face crops"),
]


class DatasetImportForm(forms.Form):
    """A zip upload or (for large sets) a folder on the server under the allowed root."""

    name = forms.CharField(max_length=120)
    file = forms.FileField(required=False, help_text="A zip of <class>/<image> folders.")
    folder = forms.CharField(
        required=False, max_length=500, help_text="Or a folder path under the server's import root."
    )
    attribute_source = forms.ChoiceField(
        choices=AttributeSource.choices,
        initial=AttributeSource.ANNOTATOR,
        help_text="Where the attributes.csv labels (age group, gender, ...) came from.",
    )
    face_crop = forms.ChoiceField(choices=FACE_CROP_CHOICES, initial="auto")

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("file")) == bool(cleaned.get("folder")):
            raise forms.ValidationError("Give either a zip file or a server folder.")
        return cleaned


def _dataset_versions():
    return DatasetVersion.objects.select_related("dataset")


class NameListField(forms.CharField):
    """Names typed comma-separated on a page, or sent as a JSON list through the API."""

    def to_python(self, value):
        if isinstance(value, list | tuple):
            items = [str(item) for item in value]
        else:
            items = (super().to_python(value) or "").split(",")
        return [item.strip() for item in items if item.strip()]


def option_fields(options_class, *, overrides: bool = False) -> dict[str, forms.Field]:
    """A form field per field of an options class, with its type, default, choices and help.

    With `overrides` every field is optional and starts empty: a k-fold or mitigation run
    changes only what is given of a model version's recipe.
    """
    fields = {}
    for option in options_of(options_class):
        common = {"label": option.name.replace("_", " ").capitalize(), "help_text": option.help}
        required = option.required or not (overrides or option.default in (None, "", ()))
        if option.type is bool:
            field = (
                forms.NullBooleanField(**common)
                if overrides
                else forms.BooleanField(required=False, **common)
            )
        elif option.choices:
            choices = [(c, c) for c in option.choices]
            field = forms.TypedChoiceField(
                choices=[("", "(the version's)")] + choices if overrides else choices,
                coerce=option.type, empty_value=None, required=required, **common,
            )  # fmt: skip
        elif option.is_list:
            field = NameListField(required=required, **common)
        elif option.type is str:
            # Attribute column names.
            field = forms.CharField(max_length=60, required=required, **common)
        else:
            number = forms.IntegerField if option.type is int else forms.FloatField
            field = number(
                min_value=option.minimum, max_value=option.maximum, required=required, **common
            )
        if option.default is None:
            # Decided by other fields (lr by the optimizer): empty means that default.
            field.widget.attrs["placeholder"] = f"default: {option.default_text}"
            version = "the version's, else " if overrides else ""
            field.help_text = f"{option.help}; empty: {version}{option.default_text}"
        elif not overrides and not option.required and option.default not in ("", ()):
            field.initial = option.default
        fields[option.name] = field
    return fields


class JobForm(forms.Form):
    """Base of the job forms: `params()` is what the job stores and its handler reads."""

    kind: str = ""

    def params(self) -> dict:
        values = {}
        for key, value in self.cleaned_data.items():
            if isinstance(value, DatasetVersion | ModelVersion):
                value = value.pk
            if value not in (None, ""):
                values[key] = value
        return values


def job_form(kind: str):
    """Make a form class the form of a kind of job: its `kind`, and after the fields it
    declares (the rows it names), a field per option of the kind's options in the job table."""
    job_type = JOBS[kind]
    fields = {}
    for options in job_type.options:
        fields |= option_fields(options)
    if job_type.recipe_overrides:
        fields |= option_fields(TrainConfig, overrides=True)

    def make(form_class):
        form_class.kind = kind
        form_class.base_fields.update(fields)
        return form_class

    return make


@job_form(JobKind.TRAIN)
class TrainForm(JobForm):
    # Shown first; the page folds the rest of the recipe under "Advanced".
    basic_fields = ("dataset_version", "arch", "epochs", "name")
    dataset_version = forms.ModelChoiceField(queryset=_dataset_versions())
    name = forms.CharField(max_length=120, required=False)
    val_dataset_version = forms.ModelChoiceField(
        queryset=_dataset_versions(),
        required=False,
        help_text="Validate on this version instead of a stratified split.",
    )
    keep_if_cancelled = forms.BooleanField(
        required=False, help_text="If cancelled, still store the best epoch so far as a version."
    )


def check_classes(cleaned: dict) -> None:
    """Refuse, at submission, a dataset version with classes the model does not know: scoring
    it would fail in the worker after loading every image (ml.evaluate.true_labels_for)."""
    model, data = cleaned.get("model_version"), cleaned.get("dataset_version")
    if model is None or data is None:
        return
    unknown = [c for c in data.classes if c not in model.classes]
    if unknown:
        raise forms.ValidationError(
            f"{data} has classes {', '.join(unknown)} that {model.name} does not predict (it "
            f"knows {', '.join(model.classes)}). Choose a dataset version labelled with the "
            "model's classes."
        )


@job_form(JobKind.EVALUATE)
class EvaluateForm(JobForm):
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.all())
    dataset_version = forms.ModelChoiceField(queryset=_dataset_versions())

    def clean(self):
        cleaned = super().clean()
        check_classes(cleaned)
        return cleaned


@job_form(JobKind.KFOLD)
class KFoldForm(JobForm):
    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.all(),
        required=False,
        help_text="Cross-validate this version's recipe (architecture and hyper-parameters).",
    )
    dataset_version = forms.ModelChoiceField(
        queryset=_dataset_versions(), required=False, help_text="Default: the model's data."
    )

    def clean(self):
        cleaned = super().clean()
        model = cleaned.get("model_version")
        if not cleaned.get("dataset_version") and not (model and model.dataset_version_id):
            raise forms.ValidationError("Choose a dataset version.")
        if not model and not cleaned.get("arch"):
            raise forms.ValidationError("Choose an architecture or a model version.")
        return cleaned


@job_form(JobKind.AUDIT)
class AuditForm(JobForm):
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.all())
    dataset_version = forms.ModelChoiceField(queryset=_dataset_versions())

    def clean(self):
        cleaned = super().clean()
        check_classes(cleaned)
        version, columns = cleaned.get("dataset_version"), cleaned.get("attributes")
        if version is not None:
            known = set(version.attribute_columns)
            if not known:
                raise forms.ValidationError(f"{version} has no attributes to audit.")
            unknown = sorted(set(columns or []) - known)
            if unknown:
                raise forms.ValidationError(f"{version} has no column {', '.join(unknown)}.")
        return cleaned


@job_form(JobKind.MITIGATE)
class MitigateForm(JobForm):
    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.all(), help_text="The version to improve (its recipe)."
    )
    dataset_version = forms.ModelChoiceField(
        queryset=_dataset_versions(), help_text="Evaluation set with attributes (before/after)."
    )
    train_dataset_version = forms.ModelChoiceField(
        queryset=_dataset_versions(), required=False, help_text="Default: the model's data."
    )

    def clean(self):
        cleaned = super().clean()
        model = cleaned.get("model_version")
        train = cleaned.get("train_dataset_version") or (model and model.dataset_version)
        if model is not None and train is None:
            raise forms.ValidationError("Choose the dataset version to retrain on.")
        attribute = cleaned.get("attribute")
        if train is not None and attribute and attribute not in train.attribute_columns:
            raise forms.ValidationError(f"{train} has no attribute {attribute!r}.")
        return cleaned


JOB_FORMS: dict[str, type[JobForm]] = {
    form.kind: form for form in (TrainForm, EvaluateForm, KFoldForm, AuditForm, MitigateForm)
}

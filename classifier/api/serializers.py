"""API representations of datasets, jobs, model versions and audits (issue 8's field names)."""

from django import forms
from django.contrib.auth import get_user_model
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from ml.scorecard import BROKEN, UNMEASURED

from ..forms import JOB_FORMS, NameListField
from ..models import AttributeSource, AuditReport, Dataset, DatasetVersion, Job, ModelVersion

User = get_user_model()


class DatasetVersionSerializer(serializers.ModelSerializer):
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = [
            "id", "dataset", "number", "content_hash", "size", "image_size", "classes",
            "class_counts", "attribute_counts", "attribute_source", "warnings", "errors",
            "import_job", "created_at",
        ]  # fmt: skip

    def get_warnings(self, obj) -> list[str]:
        return obj.summary.get("warnings", [])


class DatasetSerializer(serializers.ModelSerializer):
    versions = DatasetVersionSerializer(many=True, read_only=True)
    class_counts = serializers.SerializerMethodField()
    attribute_counts = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id", "name", "created_by", "created_at", "class_counts", "attribute_counts",
            "versions",
        ]  # fmt: skip

    def get_class_counts(self, obj) -> dict:
        """Counts per class of the latest version ({} until the first import finishes)."""
        latest = obj.latest_version
        return latest.class_counts if latest else {}

    def get_attribute_counts(self, obj) -> dict:
        """Counts per attribute group of the latest version: {column: {group: n}}."""
        latest = obj.latest_version
        return latest.attribute_counts if latest else {}


class DatasetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    file = serializers.FileField(help_text="A zip of <class>/<image> folders (+ attributes.csv).")
    attribute_source = serializers.ChoiceField(
        choices=AttributeSource.choices, default=AttributeSource.ANNOTATOR
    )
    face_crop = serializers.ChoiceField(choices=["auto", "always", "never"], default="auto")


class DatasetImportStartedSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    job = serializers.IntegerField()


class JobSerializer(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    dataset_version = serializers.SerializerMethodField()
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "status", "progress", "message", "result", "error", "model_version",
            "dataset_version", "params", "log", "cancel_requested", "attempts", "retry_of",
            "requested_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_model_version(self, obj) -> int | None:
        """The version a job produced (train, mitigate) or else the one it was about."""
        return (obj.result or {}).get("model_version") or obj.params.get("model_version")

    def get_dataset_version(self, obj) -> int | None:
        return (obj.result or {}).get("dataset_version") or obj.params.get("dataset_version")


class NameList(serializers.ListField):
    """A JSON list of names; a comma-separated string (what the page's field takes) also works."""

    child = serializers.CharField()

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [name.strip() for name in data.split(",") if name.strip()]
        return super().to_internal_value(data)


def _serializer_field(field: forms.Field) -> serializers.Field:
    """The typed JSON field of a job form's field (an id for a model choice).

    Omitted parameters take the form's initial values, and the versions may also be given
    beside `params`, so only fields the form needs and cannot fill in are required here.
    """
    required = field.required and field.initial is None
    if isinstance(field, forms.ModelChoiceField):
        return serializers.IntegerField(required=False, allow_null=True, help_text=field.help_text)
    common = {"required": required, "help_text": field.help_text or None}
    if not field.required:
        common["allow_null"] = True
    if isinstance(field, NameListField):
        return NameList(**common)
    if isinstance(field, forms.BooleanField | forms.NullBooleanField):
        return serializers.BooleanField(**{**common, "required": False})
    if isinstance(field, forms.ChoiceField):
        choices = [value for value, _ in field.choices if value != ""]
        return serializers.ChoiceField(choices=choices, **common)
    if isinstance(field, forms.IntegerField | forms.FloatField):
        number = (
            serializers.FloatField
            if isinstance(field, forms.FloatField)
            else serializers.IntegerField
        )
        return number(min_value=field.min_value, max_value=field.max_value, **common)
    return serializers.CharField(allow_blank=not field.required, **common)


def params_serializer(form_class) -> type[serializers.Serializer]:
    """The typed `params` of one job kind, derived from its form (the one definition)."""
    fields = {name: _serializer_field(f) for name, f in form_class.base_fields.items()}
    name = f"{form_class.kind.capitalize()}JobParams"
    return type(name, (serializers.Serializer,), {**fields, "__doc__": form_class.__doc__})


JOB_PARAMS = {kind: params_serializer(form) for kind, form in JOB_FORMS.items()}


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="JobParams",
        serializers=list(JOB_PARAMS.values()),
        resource_type_field_name=None,
    )
)
class JobParamsField(serializers.DictField):
    """The parameters of a job: the fields of its kind's `…JobParams` schema."""


class JobCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(JOB_PARAMS))
    dataset_version = serializers.IntegerField(required=False, allow_null=True)
    model_version = serializers.IntegerField(required=False, allow_null=True)
    params = JobParamsField(required=False, default=dict)

    def validate(self, attrs):
        """Type-check the params of this kind, then run the page's form of the kind, so the
        API and the browser accept the same jobs. A key the kind does not know is refused."""
        kind, params = attrs["kind"], attrs.get("params") or {}
        typed = JOB_PARAMS[kind](data=params)
        unknown = sorted(set(params) - set(typed.fields))
        if unknown:
            raise serializers.ValidationError(
                {key: [f"Unknown parameter of {kind} jobs."] for key in unknown}
            )
        typed.is_valid(raise_exception=True)
        form_class = JOB_FORMS[kind]
        # Omitted parameters take the form's initial values, as a page's untouched fields do.
        data = {n: f.initial for n, f in form_class.base_fields.items() if f.initial is not None}
        data.update(params)
        for key in ("dataset_version", "model_version"):
            if attrs.get(key) is not None:
                data[key] = attrs[key]
        form = form_class(data)
        if not form.is_valid():
            errors = form.errors.get_json_data()
            raise serializers.ValidationError(
                {k: [e["message"] for e in v] for k, v in errors.items()}
            )
        attrs["form"] = form
        return attrs


class FlagSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=["one_class", "near_chance", "few_test_faces", "own_split", "no_matrix"]
    )
    kind = serializers.ChoiceField(
        choices=[BROKEN, UNMEASURED],
        help_text=f"`{BROKEN}`: the model is useless (promoting it needs confirmation); "
        f"`{UNMEASURED}`: its numbers were not measured on a reference set.",
    )
    label = serializers.CharField()
    message = serializers.CharField()


class MeasuredOnSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The data, in words (dataset version or split).")
    size = serializers.IntegerField(help_text="Faces measured on.")
    reference = serializers.BooleanField(
        help_text="False for a split of the model's own training upload."
    )
    dataset_version = serializers.IntegerField(allow_null=True)


class ScorecardSerializer(serializers.Serializer):
    """The one record of how a version was measured (ml.scorecard); every page shows these."""

    measured_on = MeasuredOnSerializer(allow_null=True)
    source = serializers.CharField(help_text="Where the measurement came from.")
    classes = serializers.ListField(child=serializers.CharField())
    accuracy = serializers.FloatField(allow_null=True, help_text="On the model's classes.")
    macro_f1 = serializers.FloatField(allow_null=True)
    state_accuracy = serializers.FloatField(allow_null=True, help_text="On the 4 states.")
    state_macro_f1 = serializers.FloatField(allow_null=True)
    recall = serializers.DictField(child=serializers.FloatField(), help_text="Per class.")
    support = serializers.DictField(child=serializers.IntegerField(), help_text="Test faces.")
    calibration_faces = serializers.IntegerField(
        allow_null=True, help_text="Labelled faces its share correction was measured on."
    )
    headline = serializers.FloatField(
        allow_null=True,
        help_text="The accuracy that may be shown as a quality claim: null while any flag "
        "stands (then it was not measured on a reference set, or the model is broken).",
    )
    flags = FlagSerializer(many=True)


class ModelVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    promoted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    audits = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    scorecard = serializers.SerializerMethodField()
    flags = FlagSerializer(source="card.flags", many=True, read_only=True)
    warnings = FlagSerializer(
        source="card.broken",
        many=True,
        read_only=True,
        help_text="The flags that make promoting this version likely a mistake: it predicts "
        'one class, or scores near chance (promote needs `{"confirm": true}`). Empty when none.',
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id", "name", "arch", "classes", "state_mapping", "input_size", "normalisation",
            "source", "params", "metrics", "history", "device", "dataset_version", "job",
            "checkpoint_sha256", "created_by", "created_at", "is_active", "promoted_at",
            "promoted_by", "audits", "scorecard", "flags", "warnings",
        ]  # fmt: skip

    @extend_schema_field(ScorecardSerializer)
    def get_scorecard(self, version) -> dict:
        return {**version.card.to_json(), "headline": version.card.headline}


class PromoteSerializer(serializers.Serializer):
    confirm = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Required (true) to promote a version that has `warnings`.",
    )


class AuditSerializer(serializers.ModelSerializer):
    source = serializers.CharField(
        read_only=True,
        help_text="Where the attribute labels came from: self-reported, annotator or "
        "model-inferred.",
    )

    class Meta:
        model = AuditReport
        fields = [
            "id", "model_version", "dataset_version", "attributes", "source", "result", "job",
            "created_at",
        ]  # fmt: skip

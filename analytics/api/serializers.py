from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ml.labels import default_state_mapping, to_state

from ..models import (
    Classroom,
    Consent,
    FaceResult,
    Photo,
    Session,
    clean_activities,
    validate_consent_date,
)
from ..services import model_versions_used, session_summary, uncorrected_reason


class ConsentSerializer(serializers.ModelSerializer):
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Consent
        fields = ["id", "obtained_from", "method", "obtained_on", "notes", "recorded_by"]
        fields += ["recorded_at"]
        read_only_fields = ["id", "recorded_by", "recorded_at"]


class ClassroomSerializer(serializers.ModelSerializer):
    consent = ConsentSerializer(read_only=True, allow_null=True)
    activities = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="Lesson activities an upload can be tagged with (photo upload's `activity`).",
    )

    class Meta:
        model = Classroom
        fields = ["id", "name", "subject", "description", "retention", "detection_mode"]
        fields += ["hide_face_detail", "activities", "consent", "created_at"]
        read_only_fields = ["id", "consent", "created_at"]

    def validate_activities(self, value):
        try:
            return clean_activities(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None


class ModelVersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    faces = serializers.IntegerField(help_text="Faces of these results this version analysed.")
    share = serializers.FloatField(help_text="Its share of the faces (0 to 1).")


class SummarySerializer(serializers.Serializer):
    """The per-session aggregates; shares and the index are null while there are no faces (and
    see `counts_rounded`)."""

    faces = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    shares = serializers.DictField(child=serializers.FloatField(allow_null=True))
    engagement_index = serializers.FloatField(
        allow_null=True, help_text="Share of detected faces whose state is Engaged (0 to 1)."
    )
    photos = serializers.DictField(child=serializers.IntegerField())
    model_versions = ModelVersionRefSerializer(
        many=True, help_text="The model versions whose faces these are, with each one's share."
    )
    corrected_shares = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text=(
            "Share of each state corrected for the errors the model versions that analysed the "
            "faces are known to make (measured on labelled validation faces): each version's "
            "faces with its own calibration, combined weighted by their face counts. Null when "
            "a version has no calibration or there are no faces; `shares` stays the raw count."
        ),
    )
    intervals = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        allow_null=True,
        help_text=(
            "Per state, the [lower, upper] bound of a 90 % interval around the corrected share "
            "(bootstrap over the faces and the uncertainty of the error rates; with several "
            "versions, a stratified bootstrap of the counts-weighted sum)."
        ),
    )
    faces_to_conclude = serializers.IntegerField(
        allow_null=True,
        help_text=(
            "About how many more faces this session needs before the trend's rule (its 90 % "
            "engagement range clear of the analysed session before it, both with at least 80 "
            "faces) can conclude; 0 once it has them (or it waits on a session before it with "
            "too few faces), null where no number of its own faces would do (shares "
            "uncorrected, or its estimate inside the earlier range). Estimated from the range's "
            "narrowing as 1/sqrt(faces); a multiple of 5 where counts are rounded."
        ),
    )
    photos_to_conclude = serializers.IntegerField(
        allow_null=True,
        help_text="`faces_to_conclude` in photos, at the session's faces per analysed photo.",
    )
    conclusion = serializers.CharField(
        help_text="The meter in words, with the numbers the page shows (empty if uncorrected)."
    )
    counts_rounded = serializers.BooleanField(
        help_text=(
            "True where the classroom hides per-face detail: each count is rounded to a "
            "multiple of 5, shares and the index come from the rounded counts and are null "
            "below 10 faces, corrected shares are whole percents and null below 80 faces, so "
            "no count tells one photo's faces apart."
        )
    )
    method = serializers.CharField(
        allow_null=True,
        help_text=(
            "The correction (ml.quantify.METHODS): 'pacc' probabilistic adjusted classify and "
            "count, 'acc' adjusted classify and count, 'em' prior adjustment, 'cc' none; null "
            "when uncorrected."
        ),
    )


class SessionSerializer(serializers.ModelSerializer):
    classroom = serializers.PrimaryKeyRelatedField(queryset=Classroom.objects.none())
    summary = serializers.SerializerMethodField()
    model_versions = serializers.SerializerMethodField(
        help_text="The model versions the session's current results come from."
    )
    uncorrected_reason = serializers.SerializerMethodField(
        help_text="Why the summary's shares are not corrected, in words; empty when they are."
    )

    class Meta:
        model = Session
        fields = ["id", "classroom", "title", "started_at", "kind", "note", "summary"]
        fields += ["model_versions"]
        fields += ["uncorrected_reason", "created_at"]
        read_only_fields = ["id", "summary", "model_versions", "uncorrected_reason", "created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            # Another teacher's classroom id is answered like a missing one.
            self.fields["classroom"].queryset = Classroom.objects.filter(owner=request.user)

    def validate_classroom(self, classroom):
        if self.instance is not None and classroom != self.instance.classroom:
            raise serializers.ValidationError("A session cannot move to another classroom.")
        return classroom

    @extend_schema_field(SummarySerializer)
    def get_summary(self, session) -> dict:
        summaries = self.context.get("summaries")
        if summaries and session.pk in summaries:
            return summaries[session.pk]
        return session_summary(session)

    @extend_schema_field(ModelVersionRefSerializer(many=True))
    def get_model_versions(self, session) -> list[dict]:
        used = self.context.get("model_versions")
        if used is None:
            used = model_versions_used([session.pk])
        return used.get(session.pk, [])

    def get_uncorrected_reason(self, session) -> str:
        summary = self.get_summary(session)
        return uncorrected_reason(session.quantification, summary, self.get_model_versions(session))


class BoxSerializer(serializers.Serializer):
    x = serializers.IntegerField()
    y = serializers.IntegerField()
    w = serializers.IntegerField()
    h = serializers.IntegerField()


class FaceSerializer(serializers.ModelSerializer):
    box = serializers.SerializerMethodField()
    state_probabilities = serializers.SerializerMethodField()

    class Meta:
        model = FaceResult
        fields = ["box", "score", "label", "state", "state_probabilities", "probabilities"]
        fields += ["model_version"]

    @extend_schema_field(
        serializers.DictField(
            child=serializers.FloatField(),
            help_text="Probability of each classroom state: the sum of its expressions' "
            "`probabilities`, by the analysing model version's state mapping.",
        )
    )
    def get_state_probabilities(self, face) -> dict[str, float]:
        version = face.model_version
        mapping = version.state_mapping if version else {}
        mapping = mapping or default_state_mapping(face.probabilities)
        totals = {}
        for label, p in face.probabilities.items():
            state = to_state(label, mapping)
            totals[state] = totals.get(state, 0.0) + p
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    @extend_schema_field(BoxSerializer)
    def get_box(self, face) -> dict:
        return {"x": face.x, "y": face.y, "w": face.w, "h": face.h}


class PhotoSerializer(serializers.ModelSerializer):
    faces = serializers.SerializerMethodField(
        help_text="One entry per detected face; null when the classroom hides per-face detail "
        "(`hide_face_detail`)."
    )
    face_count = serializers.SerializerMethodField(help_text="How many faces were detected.")
    image_url = serializers.SerializerMethodField(
        help_text="Where the stored image is served (permission-checked); null once deleted."
    )

    class Meta:
        model = Photo
        fields = ["id", "session", "status", "error", "width", "height", "model_version"]
        fields += ["faces", "face_count", "original_name", "captured_at", "uploaded_at"]
        fields += ["analysed_at"]
        fields += ["image_state", "image_url"]
        read_only_fields = fields

    @extend_schema_field(FaceSerializer(many=True, allow_null=True))
    def get_faces(self, photo) -> list[dict] | None:
        if photo.session.classroom.hide_face_detail:
            return None
        return FaceSerializer(photo.faces.all(), many=True).data

    def get_face_count(self, photo) -> int:
        return len(photo.faces.all())  # the prefetched faces: no query per photo

    def get_image_url(self, photo) -> str | None:
        if not photo.image:
            return None
        # The state and transform version in the URL make a browser fetch a new copy, not reuse
        # the original or an older copy.
        version = f"{photo.image_state}{photo.privacy_version or ''}"
        return f"{reverse('analytics:photo-image', args=[photo.pk])}?v={version}"


class ConsentRequestSerializer(ConsentSerializer):
    class Meta(ConsentSerializer.Meta):
        fields = ["obtained_from", "method", "obtained_on", "notes"]
        extra_kwargs = {"obtained_on": {"validators": [validate_consent_date]}}


class UploadRequestSerializer(serializers.Serializer):
    image = serializers.ListField(
        child=serializers.FileField(),
        help_text="One or more files: JPEG, PNG, WebP or BMP photos, or zips of them.",
    )
    activity = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="The lesson activity these photos show, one of the classroom's `activities` "
        "(e.g. 'group work'); its faces are pooled with that activity's in other sessions.",
    )


class UploadedPhotoSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    file = serializers.CharField(help_text="The uploaded file (or zip/entry) it was stored from.")


class FileErrorSerializer(serializers.Serializer):
    file = serializers.CharField(help_text="The refused file, or `zip name/entry`.")
    detail = serializers.CharField(
        help_text="One sentence for the person who chose the file: it names the file, says "
        "what is wrong and what to do."
    )
    duplicate_of = serializers.CharField(
        required=False,
        help_text="Only for a photo the session already holds (same content): the earlier "
        "photo's file name. It was not stored or counted again.",
    )


class UploadResponseSerializer(serializers.Serializer):
    photos = UploadedPhotoSerializer(many=True)
    errors = FileErrorSerializer(many=True)


class UploadRejectedSerializer(UploadResponseSerializer):
    detail = serializers.CharField()


class TrendRowSerializer(SummarySerializer):
    session = serializers.IntegerField()
    title = serializers.CharField()
    started_at = serializers.DateTimeField()
    kind = serializers.CharField()
    enough_faces = serializers.BooleanField(
        help_text="Whether the corrected shares rest on enough faces to support a conclusion."
    )
    change = serializers.ChoiceField(
        choices=["up", "down"],
        allow_null=True,
        help_text=(
            "'up'/'down' when the corrected engagement moved beyond doubt since the session "
            "before (their 90 % intervals do not overlap, both with enough faces), else null."
        ),
    )


class ReanalyseResponseSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Photos whose original was deleted or blurred.")
    detail = serializers.CharField()


class ActivityPoolSerializer(serializers.Serializer):
    activity = serializers.CharField()
    faces = serializers.IntegerField(help_text="Faces of photos tagged with it in the range.")
    sessions = serializers.IntegerField(help_text="Sessions (lessons) those photos come from.")
    shares = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Raw share of each state (null below 10 faces where per-face detail is hidden).",
    )
    corrected_shares = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Corrected shares pooled across the sessions: each model version's faces "
        "corrected with its own calibration (PACC), weighted by faces. Null when a version has "
        "no calibration (or below 80 faces where per-face detail is hidden).",
    )
    intervals = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        allow_null=True,
        help_text="90 % range of each corrected share (stratified bootstrap).",
    )
    method = serializers.CharField(allow_null=True)
    enough_faces = serializers.BooleanField()
    model_versions = serializers.ListField(child=serializers.DictField())


class ActivityComparisonSerializer(serializers.Serializer):
    activity = serializers.CharField()
    reference = serializers.CharField(help_text="The activity with the most faces.")
    verdict = serializers.ChoiceField(choices=["up", "down", "same", "too_few"])
    difference = serializers.FloatField(help_text="Corrected engagement minus the reference's.")
    half_width = serializers.FloatField()
    reference_half_width = serializers.FloatField()
    sessions = serializers.IntegerField()
    faces = serializers.IntegerField()
    sentence = serializers.CharField()


class ActivitiesSerializer(serializers.Serializer):
    activities = ActivityPoolSerializer(many=True)
    comparisons = ActivityComparisonSerializer(
        many=True,
        help_text="Each activity against the reference by the trend's rule: 'up'/'down' beyond "
        "doubt when the 90 % engagement ranges do not overlap (both with 80 faces or more).",
    )

"""Teacher API: thin viewsets scoped to the requesting teacher; the work lives in services."""

import json
from datetime import timedelta

from django.forms import IntegerField
from django.forms import ValidationError as FormValidationError
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from edumood_site.api import Conflict, SettingsRateThrottle

from .. import services
from ..choices import AccessAction
from ..forms import SessionTimeField
from ..models import AccessRecord, Classroom, Photo, Session
from .serializers import (
    ActivitiesSerializer,
    ClassroomSerializer,
    ConsentRequestSerializer,
    ConsentSerializer,
    PhotoSerializer,
    ReanalyseResponseSerializer,
    SessionSerializer,
    TrendRowSerializer,
    UploadRejectedSerializer,
    UploadRequestSerializer,
    UploadResponseSerializer,
)

NOT_FOUND = OpenApiResponse(description="Not found, or owned by another teacher.")
INVALID = OpenApiResponse(description="Invalid fields: `{field: [messages]}`.")
RANGE_PARAMETERS = [
    OpenApiParameter("after", OpenApiTypes.DATETIME, description="Sessions started at or after"),
    OpenApiParameter("before", OpenApiTypes.DATETIME, description="Sessions started at or before"),
]


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        return json.dumps(data).encode(self.charset)  # an error body, e.g. {"detail": ...}


def date_range(params) -> tuple:
    """`after` and `before` query parameters (ISO date or date-time); 400 when unreadable or
    beyond what the database stores."""
    field = SessionTimeField(required=False)
    try:
        return field.clean(params.get("after")), field.clean(params.get("before"))
    except FormValidationError as exc:
        raise ValidationError({"detail": f"after/before: {'; '.join(exc.messages)}"}) from None


# Clients, and the session page's own polling, read the same results every few seconds: one
# record per reader, view and session in this window keeps the access log readable.
API_READ_WINDOW = timedelta(minutes=10)


def record_api_read(request, action, classroom, *, session=None, detail: str) -> None:
    """Log an API read of per-face results or aggregates, as the pages log theirs."""
    recent = AccessRecord.objects.filter(
        user=request.user,
        action=action,
        classroom=classroom,
        session=session,
        detail=detail,
        at__gte=timezone.now() - API_READ_WINDOW,
    )
    if not recent.exists():
        services.record_access(request.user, action, classroom, session=session, detail=detail)


HIDDEN = OpenApiResponse(
    description="Per-face rows asked of a classroom that hides per-face detail "
    "(`hide_face_detail`)."
)


def faces_csv(sessions) -> str:
    """The per-face CSV; 409 where the classroom hides per-face detail."""
    try:
        return services.faces_csv(sessions)
    except services.FaceDetailHidden as exc:
        raise Conflict(str(exc)) from None


def csv_response(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@extend_schema_view(
    list=extend_schema(responses={200: ClassroomSerializer(many=True)}),
    create=extend_schema(responses={201: ClassroomSerializer, 400: INVALID}),
    retrieve=extend_schema(responses={200: ClassroomSerializer, 404: NOT_FOUND}),
    partial_update=extend_schema(
        responses={200: ClassroomSerializer, 400: INVALID, 404: NOT_FOUND},
        description="Changing `retention` to blur or delete also applies it to photos already "
        "analysed: a worker blurs or deletes them shortly after the answer.",
    ),
    destroy=extend_schema(
        responses={204: None, 404: NOT_FOUND},
        description="Deletes the classroom, its sessions, results and every stored image.",
    ),
)
class ClassroomViewSet(viewsets.ModelViewSet):
    """The requesting teacher's classrooms; another teacher's answer 404."""

    serializer_class = ClassroomSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Classroom.objects.none()
        return Classroom.with_consents(Classroom.objects.filter(owner=self.request.user))

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)

    def perform_update(self, serializer):
        before = services.audited_settings(serializer.instance)
        retention = serializer.validated_data.pop("retention", None)
        classroom = serializer.save()
        if retention is not None and retention != classroom.retention:
            services.set_retention(classroom, retention)
        services.audit_setting_changes(self.request.user, classroom, before)

    @extend_schema(
        request=ConsentRequestSerializer,
        responses={201: ConsentSerializer, 400: INVALID, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def consent(self, request, pk=None):
        """Record who consented, how and when; uploads need it."""
        classroom = self.get_object()
        serializer = ConsentRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        consent = services.record_consent(classroom, user=request.user, **serializer.validated_data)
        return Response(ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=RANGE_PARAMETERS,
        responses={200: TrendRowSerializer(many=True), 400: INVALID, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def trends(self, request, pk=None):
        """One row per session (oldest first) with the summary fields."""
        after, before = date_range(request.query_params)
        classroom = self.get_object()
        record_api_read(request, AccessAction.VIEWED_DASHBOARD, classroom, detail="API: trends")
        rows = services.classroom_trends(classroom, after, before)
        return Response(TrendRowSerializer(rows, many=True).data)

    @extend_schema(
        parameters=RANGE_PARAMETERS,
        responses={200: ActivitiesSerializer, 400: INVALID, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def activities(self, request, pk=None):
        """Lesson activities pooled across the sessions in the range: per activity faces,
        sessions, corrected shares and 90 % ranges, and each compared with the activity of
        most faces by the trend's rule."""
        after, before = date_range(request.query_params)
        classroom = self.get_object()
        record_api_read(request, AccessAction.VIEWED_DASHBOARD, classroom, detail="API: activities")
        pools = services.activity_pools(classroom, after, before)
        body = {"activities": pools, "comparisons": services.compare_activities(pools)}
        return Response(ActivitiesSerializer(body).data)

    @extend_schema(
        parameters=RANGE_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="Per-session aggregates (faces rows with ?rows=faces, activities "
                "pooled across sessions with ?rows=activities)",
            ),
            (404, "text/csv"): NOT_FOUND,
            (409, "text/csv"): HIDDEN,
        },
    )
    def export_csv(self, request, pk=None):
        """Per-session aggregates of the classroom as CSV; `?rows=faces` for one row per face,
        `?rows=activities` for one per activity pooled across the sessions."""
        classroom = self.get_object()
        after, before = date_range(request.query_params)
        wanted = request.query_params.get("rows")
        rows = wanted if wanted in ("faces", "activities") else "sessions"
        if rows == "faces":
            text = faces_csv(services.classroom_sessions(classroom, after, before))
        elif rows == "activities":
            text = services.activities_csv(classroom, after, before)
        else:
            text = services.sessions_csv(classroom, after, before)
        services.record_access(
            request.user, AccessAction.EXPORTED_CSV, classroom, detail=f"classroom CSV ({rows})"
        )
        return csv_response(text, f"classroom-{pk}-{rows}.csv")


class IdFilter(filters.NumberFilter):
    """An object id: a whole number in the database's integer range, not a choice of existing
    objects, so a missing id and another teacher's id both answer an empty list (else the
    difference tells which ids exist)."""

    field_class = IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=2**63 - 1, **kwargs)


class SessionTimeFilter(filters.DateTimeFilter):
    field_class = SessionTimeField


class SessionFilter(filters.FilterSet):
    classroom = IdFilter(field_name="classroom_id")
    after = SessionTimeFilter(field_name="started_at", lookup_expr="gte")
    before = SessionTimeFilter(field_name="started_at", lookup_expr="lte")

    class Meta:
        model = Session
        fields = ["classroom", "kind", "after", "before"]


class PhotoFilter(filters.FilterSet):
    session = IdFilter(field_name="session_id")

    class Meta:
        model = Photo
        fields = ["session", "status"]


@extend_schema_view(
    list=extend_schema(responses={200: SessionSerializer(many=True)}),
    create=extend_schema(responses={201: SessionSerializer, 400: INVALID}),
    retrieve=extend_schema(responses={200: SessionSerializer, 404: NOT_FOUND}),
    partial_update=extend_schema(responses={200: SessionSerializer, 400: INVALID, 404: NOT_FOUND}),
    destroy=extend_schema(
        responses={204: None, 404: NOT_FOUND},
        description="Deletes the session, its results and every stored image.",
    ),
)
class SessionViewSet(viewsets.ModelViewSet):
    """Sessions of the requesting teacher's classrooms, each with its summary."""

    serializer_class = SessionSerializer
    filterset_class = SessionFilter
    throttle_scope = None  # set to "uploads" on the upload action only
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Session.objects.none()
        return (
            Session.objects.filter(classroom__owner=self.request.user)
            .select_related("classroom")
            .order_by("-started_at", "-id")
        )

    def _with_summaries(self, sessions: list, **kwargs) -> SessionSerializer:
        """A serializer whose sessions' summaries and model versions are read once, up front,
        not once per field that needs them (`summary`, `model_versions`, `uncorrected_reason`)."""
        context = self.get_serializer_context()
        summaries = services.session_summaries(s.pk for s in sessions)
        context["summaries"] = summaries
        context["model_versions"] = {
            pk: summary["model_versions"] for pk, summary in summaries.items()
        }
        instance = sessions if kwargs.get("many") else sessions[0]
        return self.get_serializer_class()(instance, context=context, **kwargs)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        # Each session's summary is a read of its results: logged once per classroom listed.
        for classroom in {session.classroom for session in page}:
            record_api_read(
                request, AccessAction.VIEWED_DASHBOARD, classroom, detail="API: sessions list"
            )
        return self.get_paginated_response(self._with_summaries(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        session = self.get_object()
        record_api_read(
            request, AccessAction.VIEWED_SESSION, session.classroom, session=session, detail="API"
        )
        # The session page polls this while photos are analysed.
        return Response(self._with_summaries([session]).data)

    @extend_schema(
        request={"multipart/form-data": UploadRequestSerializer},
        responses={
            202: UploadResponseSerializer,
            400: OpenApiResponse(
                UploadRejectedSerializer, description="Every file rejected, or none/too many sent."
            ),
            404: NOT_FOUND,
            409: OpenApiResponse(description="The classroom has no consent record yet."),
            429: OpenApiResponse(description="Too many uploads; retry after the given delay."),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        parser_classes=[MultiPartParser, FormParser],
        throttle_classes=[SettingsRateThrottle],
        throttle_scope="uploads",
    )
    def photos(self, request, pk=None):
        """Upload photos (or zips of photos) in `image` parts; each is queued for analysis."""
        session = self.get_object()
        try:
            outcome = services.upload_photos(
                session, request.FILES.getlist("image"), request.data.get("activity", "")
            )
        except services.ConsentRequired as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except services.UploadError as exc:
            return Response(
                {"detail": str(exc), "photos": [], "errors": []},
                status=status.HTTP_400_BAD_REQUEST,
            )
        body = {
            "photos": [
                {
                    "id": p.pk,
                    "url": reverse("analytics-api:photo-detail", args=[p.pk]),
                    "file": p.original_name,
                }
                for p in outcome.photos
            ],
            "errors": outcome.errors,
        }
        if not outcome.photos:
            body["detail"] = "No file was accepted; see `errors`."
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: ReanalyseResponseSerializer, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def reanalyse(self, request, pk=None):
        """Analyse the session's stored originals again with the active model."""
        queued, skipped = services.reanalyse_session(self.get_object())
        detail = f"{queued} photo(s) queued for analysis with the active model."
        if skipped:
            detail += f" {skipped} photo(s) keep their results: their originals were not kept."
        return Response(
            {"queued": queued, "skipped": skipped, "detail": detail},
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One row per face"),
            (404, "text/csv"): NOT_FOUND,
            (409, "text/csv"): HIDDEN,
        }
    )
    def export_csv(self, request, pk=None):
        """One row per detected face of the session (box, state, probabilities); no images."""
        session = self.get_object()
        text = faces_csv([session])
        services.record_access(
            request.user,
            AccessAction.EXPORTED_CSV,
            session.classroom,
            session=session,
            detail="session CSV (faces)",
        )
        return csv_response(text, f"session-{pk}-faces.csv")


@extend_schema_view(
    list=extend_schema(responses={200: PhotoSerializer(many=True)}),
    retrieve=extend_schema(responses={200: PhotoSerializer, 404: NOT_FOUND}),
)
class PhotoViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Photos of the requesting teacher's sessions with their per-face results."""

    serializer_class = PhotoSerializer
    filterset_class = PhotoFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Photo.objects.none()
        return (
            Photo.objects.filter(session__classroom__owner=self.request.user)
            .select_related("session__classroom")
            .prefetch_related("faces__model_version")
            .order_by("uploaded_at", "id")
        )

    def _record_reads(self, photos) -> None:
        for session in {photo.session for photo in photos}:
            record_api_read(
                self.request,
                AccessAction.VIEWED_SESSION,
                session.classroom,
                session=session,
                detail="API: photos",
            )

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        self._record_reads(self.paginator.page.object_list)
        return response

    def retrieve(self, request, *args, **kwargs):
        photo = self.get_object()
        self._record_reads([photo])
        return Response(self.get_serializer(photo).data)

    @extend_schema(
        request=None,
        responses={
            202: PhotoSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(description="Not failed, or its original is no longer stored."),
        },
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed photo for analysis again."""
        try:
            photo = services.retry_photo(self.get_object())
        except services.PhotoActionError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(PhotoSerializer(photo).data, status=status.HTTP_202_ACCEPTED)

"""Admin API: datasets, jobs, model versions, audits. Staff only (teachers get 403)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from edumood_site.api import Conflict, SettingsRateThrottle

from ..datasets import DatasetImportError
from ..jobs import create_job, retry_job, start_import
from ..models import AuditReport, Dataset, Job, ModelVersion
from ..services import PromotionNeedsConfirmation, promote
from . import serializers as s

# Descriptions only: the project's AutoSchema gives every error response the one error body.
DENIED = OpenApiResponse(description="Not logged in, or not staff (teachers get 403).")
MISSING = OpenApiResponse(description="No such object.")
INVALID = OpenApiResponse(description="Invalid fields: `{field: [messages]}`.")
CONFLICT = OpenApiResponse(description="Not possible in the job's state (already ended / not yet).")


class AdminViewSet(viewsets.GenericViewSet):
    permission_classes = [IsAdminUser]


@extend_schema_view(
    list=extend_schema(responses={200: s.DatasetSerializer(many=True), 403: DENIED}),
    retrieve=extend_schema(responses={200: s.DatasetSerializer, 403: DENIED, 404: MISSING}),
    create=extend_schema(
        request={"multipart/form-data": s.DatasetUploadSerializer},
        responses={202: s.DatasetImportStartedSerializer, 400: INVALID, 403: DENIED},
        description="Upload a zip of <class>/<image> folders (optionally attributes.csv); "
        "a new version of the dataset with this name is imported by a job.",
    ),
)
class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, AdminViewSet):
    queryset = Dataset.objects.prefetch_related("versions")
    serializer_class = s.DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]
    throttle_scope = "uploads"

    def get_throttles(self):
        return [SettingsRateThrottle()] if self.action == "create" else []

    def create(self, request):
        upload = s.DatasetUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        try:
            dataset, job = start_import(
                upload.validated_data["name"],
                user=request.user,
                upload=upload.validated_data["file"],
                attribute_source=upload.validated_data["attribute_source"],
                face_crop=upload.validated_data["face_crop"],
            )
        except DatasetImportError as exc:
            return Response({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"dataset": dataset.pk, "job": job.pk}, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(responses={200: s.JobSerializer(many=True), 403: DENIED}),
    retrieve=extend_schema(responses={200: s.JobSerializer, 403: DENIED, 404: MISSING}),
    create=extend_schema(
        request=s.JobCreateSerializer,
        responses={202: s.JobSerializer, 400: INVALID, 403: DENIED},
        description="Start a train / evaluate / kfold / audit / mitigate job on its kind's "
        "queue; follow it with GET /api/jobs/{id}/.",
    ),
    cancel=extend_schema(
        request=None, responses={202: s.JobSerializer, 403: DENIED, 404: MISSING, 409: CONFLICT}
    ),
    retry=extend_schema(
        request=None, responses={202: s.JobSerializer, 403: DENIED, 404: MISSING, 409: CONFLICT}
    ),
)
class JobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, AdminViewSet
):
    queryset = Job.objects.select_related("requested_by")
    serializer_class = s.JobSerializer
    filterset_fields = ["kind", "status"]

    def create(self, request):
        start = s.JobCreateSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        form = start.validated_data["form"]
        job = create_job(form.kind, form.params(), user=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    # This router also routes `<id>/<action>.json/` and passes the suffix as `format`: every
    # action takes it, or that route answers 500.
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None, format=None):
        job = self.get_object()
        if job.is_terminal:
            return Response({"detail": f"The job already {job.status}."}, status=409)
        job.request_cancel()
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None, format=None):
        job = self.get_object()
        if not job.is_terminal:
            return Response({"detail": "The job has not ended yet."}, status=409)
        new = retry_job(job, user=request.user)
        return Response(s.JobSerializer(new).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(responses={200: s.ModelVersionSerializer(many=True), 403: DENIED}),
    retrieve=extend_schema(responses={200: s.ModelVersionSerializer, 403: DENIED, 404: MISSING}),
    promote=extend_schema(
        request=s.PromoteSerializer,
        responses={
            200: s.ModelVersionSerializer,
            403: DENIED,
            404: MISSING,
            409: OpenApiResponse(
                description="The version has `warnings` (predicts one class, scores near "
                'chance) and the request did not send `{"confirm": true}`.'
            ),
        },
        description="Make this version the active one; inference uses it from the next photo. "
        'A version with `warnings` is promoted only with `{"confirm": true}` in the body.',
    ),
)
class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, AdminViewSet):
    queryset = ModelVersion.objects.select_related("created_by", "promoted_by").prefetch_related(
        "audits"
    )
    serializer_class = s.ModelVersionSerializer
    filterset_fields = ["arch", "source", "is_active", "dataset_version"]

    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None, format=None):
        version = self.get_object()
        body = s.PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            promote(version, user=request.user, confirmed=body.validated_data["confirm"])
        except PromotionNeedsConfirmation as exc:
            raise Conflict(str(exc)) from exc
        return Response(s.ModelVersionSerializer(version).data)


@extend_schema_view(
    list=extend_schema(responses={200: s.AuditSerializer(many=True), 403: DENIED}),
    retrieve=extend_schema(responses={200: s.AuditSerializer, 403: DENIED, 404: MISSING}),
)
class AuditViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, AdminViewSet):
    queryset = AuditReport.objects.all()
    serializer_class = s.AuditSerializer
    filterset_fields = ["model_version", "dataset_version"]

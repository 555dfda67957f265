from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response

from edumood_site.api import SettingsRateThrottle

from ..login_limits import locked_accounts
from ..models import ApiToken
from ..services import (
    PeopleError,
    create_person,
    issue_token,
    revoke_token,
    set_active,
    set_role,
)
from ..services import unlock as unlock_account
from .serializers import (
    ApiTokenSerializer,
    PersonCreatedSerializer,
    PersonCreateSerializer,
    PersonSerializer,
    TokenObtainSerializer,
    TokenSerializer,
)


class ObtainTokenView(GenericAPIView):
    """Exchange a username and password for a new API token.

    Every call creates a new named token; list and revoke them on /account/tokens/ or with
    /api/auth/tokens/.
    """

    # No authentication: a stale or revoked token in the header must not block logging in.
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [SettingsRateThrottle]
    throttle_scope = "token"
    serializer_class = TokenObtainSerializer

    @extend_schema(operation_id="auth_token_create", responses={201: TokenSerializer})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, key = issue_token(data["user"], data["name"])
        body = TokenSerializer({"token": key, "name": token.name, "prefix": token.prefix}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's own API tokens (never the secrets); DELETE revokes one."""

    queryset = ApiToken.objects.all()
    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        return super().get_queryset().filter(user_id=self.request.user.pk)

    def perform_destroy(self, instance):
        # Revoked, not deleted: the row keeps when the token was last used.
        revoke_token(instance)


@extend_schema_view(
    create=extend_schema(
        request=PersonCreateSerializer,
        responses={201: PersonCreatedSerializer},
        description="Create an account (a teacher unless `is_staff`). The answer holds its "
        "password, generated unless one was given, once.",
    ),
    partial_update=extend_schema(
        description='Deactivate (`{"is_active": false}`) or reactivate an account; make it an '
        'admin (`{"is_staff": true}`) or a teacher. Admins cannot deactivate themselves or '
        "change their own role; only a superuser can do either to a superuser. Each change is "
        "written to the audit log."
    ),
)
class PersonViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Accounts (the People page). Admins only."""

    queryset = get_user_model().objects.order_by("username")
    serializer_class = PersonSerializer
    permission_classes = [IsAdminUser]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def create(self, request):
        data = PersonCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            user, password = create_person(**data.validated_data, by=request.user)
        except ValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from exc
        user.new_password = password  # in this answer only; the row holds its hash
        return Response(PersonCreatedSerializer(user).data, status=status.HTTP_201_CREATED)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "locked_accounts": locked_accounts()}

    def perform_update(self, serializer):
        person, data = serializer.instance, serializer.validated_data
        with transaction.atomic():  # both changes or neither
            for field, change in [("is_active", set_active), ("is_staff", set_role)]:
                if field in data:
                    try:
                        change(person, data[field], by=self.request.user)
                    except PeopleError as exc:
                        raise serializers.ValidationError({field: [str(exc)]}) from exc

    @extend_schema(request=None, responses={200: PersonSerializer})
    @action(detail=True, methods=["post"])
    def unlock(self, request, pk=None):
        """Forget the account's failed log-ins from every address: it may log in again now."""
        person = self.get_object()
        unlock_account(person, by=request.user)
        return Response(self.get_serializer(person).data)

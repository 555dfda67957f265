from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from edumood_site.api import SettingsRateThrottle

from ..models import ApiToken
from ..services import issue_token, revoke_token
from .serializers import ApiTokenSerializer, TokenObtainSerializer, TokenSerializer


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

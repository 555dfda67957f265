from django.contrib.auth import authenticate, get_user_model
from rest_framework import exceptions, serializers

from ..login_limits import retry_after, wait_message
from ..models import ApiToken
from ..services import deactivated_message


class TokenObtainSerializer(serializers.Serializer):
    """Credentials for a new API token; `name` labels the token on the settings page."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=4096, style={"input_type": "password"}, trim_whitespace=False
    )
    name = serializers.CharField(max_length=100, required=False, default="API")

    def validate(self, attrs):
        request = self.context.get("request")
        user = authenticate(
            request=request,
            username=attrs["username"],
            password=attrs["password"],
        )
        wait = retry_after(request)
        if wait:
            raise exceptions.Throttled(wait, detail=wait_message(wait))
        if user is None:
            # One message for a wrong password and an unknown user; the right password of a
            # deactivated account is told so, and whom to ask.
            raise serializers.ValidationError(
                deactivated_message(attrs["username"], attrs["password"])
                or "Unable to log in with the given username and password."
            )
        attrs["user"] = user
        return attrs


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="The secret: send it as `Authorization: Token <token>`. Shown only once."
    )
    name = serializers.CharField()
    prefix = serializers.CharField(
        help_text="First characters of the token, as listed on /account/tokens/."
    )


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class PersonSerializer(serializers.ModelSerializer):
    """An account as admins see it on the People page (never its password)."""

    locked_out = serializers.SerializerMethodField(
        help_text="Failed log-ins hold this account back from at least one address; "
        "`POST /api/people/{id}/unlock/` clears them."
    )

    class Meta:
        model = get_user_model()
        fields = [
            "id", "username", "email", "is_staff", "is_superuser", "is_active", "locked_out",
            "last_login", "date_joined",
        ]  # fmt: skip
        read_only_fields = [f for f in fields if f not in ("is_active", "is_staff")]
        extra_kwargs = {
            "is_active": {
                "help_text": "false deactivates the account (no log-in, no API); true restores it."
            },
            "is_staff": {"help_text": "true makes the account an admin; false a teacher."},
        }

    def get_locked_out(self, person) -> bool:
        # The view puts the locked usernames in the context: one query for a whole list.
        return person.get_username().casefold() in self.context.get("locked_accounts", ())


class PersonCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z", max_length=150, help_text="Letters, digits and @/./+/-/_ only."
    )
    # No default: "" is no email address, so a schema default of "" fails OpenAPI validation
    # (openapi-spec-validator 0.9 checks defaults against their format); create_person has one.
    email = serializers.EmailField(required=False, allow_blank=True)
    is_staff = serializers.BooleanField(
        required=False, default=False, help_text="true for an admin; false (default) a teacher."
    )
    password = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        trim_whitespace=False,
        write_only=True,
        help_text="Omit to have one generated; either way the answer shows it once.",
    )

    def validate_username(self, value):
        if get_user_model().objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("Someone already has this username.")
        return value


class PersonCreatedSerializer(PersonSerializer):
    password = serializers.CharField(
        source="new_password",
        help_text="The account's password, shown only in this answer: pass it on.",
    )

    class Meta(PersonSerializer.Meta):
        fields = [*PersonSerializer.Meta.fields, "password"]

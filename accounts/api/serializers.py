from django.contrib.auth import authenticate
from rest_framework import exceptions, serializers

from ..login_limits import retry_after, wait_message
from ..models import ApiToken


class TokenObtainSerializer(serializers.Serializer):
    """Credentials for a new API token; `name` labels the token on the settings page."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        max_length=4096, style={"input_type": "password"}, trim_whitespace=False
    )
    name = serializers.CharField(max_length=100, required=False, default="API")

    def validate(self, attrs):
        request = self.context.get("request")
        wait = retry_after(request, attrs["username"])
        if wait:
            raise exceptions.Throttled(wait, detail=wait_message(wait))
        user = authenticate(
            request=request,
            username=attrs["username"],
            password=attrs["password"],
        )
        if user is None:
            # One message for a wrong password, an unknown user and an inactive one.
            raise serializers.ValidationError(
                "Unable to log in with the given username and password."
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

"""DRF authentication with the hashed API tokens: `Authorization: Token <secret>`."""

from rest_framework import authentication, exceptions

from .services import active_token_for_key, mark_used


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's header parsing (keyword `Token`), with the lookup done by hash on ApiToken.

    Unknown and revoked tokens get the same answer, so a client cannot tell whether a token
    ever existed.
    """

    def authenticate_credentials(self, key):
        token = active_token_for_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        mark_used(token)
        return token.user, token

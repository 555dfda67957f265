from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UsernameField

from .login_limits import retry_after, wait_message
from .services import admins_to_ask


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What uses this token, e.g. “grading notebook” or “LMS sync”."
    )


class LoginLimitMixin:
    """Says "too many failed log-ins" instead of "wrong password" when the log-in limits
    (accounts/login_limits.py) refused the attempt; `retry_after` then holds the seconds to
    wait. The right password of a deactivated account is told so, and whom to ask."""

    retry_after = 0

    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError:
            self.retry_after = retry_after(self.request)
            if self.retry_after:
                raise forms.ValidationError(
                    wait_message(self.retry_after), code="throttled"
                ) from None
            if self._deactivated():
                raise forms.ValidationError(
                    "Your account is deactivated, so you cannot log in. Ask an admin of this "
                    f"EduMood to reactivate it: {admins_to_ask()}.",
                    code="inactive",
                ) from None
            raise

    def _deactivated(self) -> bool:
        """Whether the username and password are right but the account is deactivated.

        Only said to someone who knows the password (the attempt was already counted against
        the log-in limits), so it tells a guesser nothing new."""
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            return False
        user = (
            get_user_model()
            ._default_manager.filter(**{get_user_model().USERNAME_FIELD: username}, is_active=False)
            .first()
        )
        return user is not None and user.check_password(password)


class LoginForm(LoginLimitMixin, AuthenticationForm):
    """The browser's /login/."""


class AdminLoginForm(LoginLimitMixin, AdminAuthenticationForm):
    """The Django admin's login, which would otherwise be a way around the limit."""


class PersonForm(forms.Form):
    """A new account on the People page; a blank password means "generate one"."""

    username = UsernameField(
        max_length=150, help_text="What they type to log in, e.g. “a.lovelace”."
    )
    email = forms.EmailField(required=False, help_text="Optional; for your records only.")
    is_staff = forms.BooleanField(
        required=False,
        label="Admin",
        help_text="Admins manage datasets, training, models and people. Teachers only see their "
        "own classrooms.",
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to generate one. Either way it is shown to you once, to pass on.",
    )

    def clean_username(self):
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("Someone already has this username.")
        return username

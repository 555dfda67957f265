from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UsernameField

from .login_limits import retry_after, wait_message
from .services import deactivated_message


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
            username, password = (self.cleaned_data.get(f) for f in ("username", "password"))
            deactivated = username and password and deactivated_message(username, password)
            if deactivated:
                raise forms.ValidationError(deactivated, code="inactive") from None
            raise


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

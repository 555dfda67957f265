from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from .login_limits import retry_after, wait_message


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What uses this token, e.g. “grading notebook” or “LMS sync”."
    )


class LoginLimitMixin:
    """Refuses an attempt before its password is tried while the account or address is over
    its failed log-in limit; `retry_after` then holds the seconds to wait."""

    retry_after = 0

    def clean(self):
        username = self.cleaned_data.get("username")
        if username:
            self.retry_after = retry_after(self.request, username)
            if self.retry_after:
                raise forms.ValidationError(wait_message(self.retry_after), code="throttled")
        return super().clean()


class LoginForm(LoginLimitMixin, AuthenticationForm):
    """The browser's /login/."""


class AdminLoginForm(LoginLimitMixin, AdminAuthenticationForm):
    """The Django admin's login, which would otherwise be a way around the limit."""

"""Log-in and log-out, the API tokens settings page, and the admins' People page."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from .forms import LoginForm, PersonForm, TokenForm
from .login_limits import clear_failures, locked_accounts
from .models import AuditEntry
from .permissions import staff_required
from .services import (
    PeopleError,
    create_person,
    issue_token,
    reset_password,
    revoke_token,
    set_active,
    set_role,
    unlock,
)

# A new secret (token or password) travels through the session across the redirect and is
# popped on the next page view, so a reload neither shows it again nor creates a second one.
NEW_TOKEN_SESSION_KEY = "accounts_new_token"
NEW_PASSWORD_SESSION_KEY = "accounts_new_password"


class LoginView(auth_views.LoginView):
    """Django's log-in page; an attempt over the failed log-in limit answers 429."""

    authentication_form = LoginForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response


class LogoutView(auth_views.LogoutView):
    """Django's log-out, which says on the log-in page that it happened."""

    def post(self, request, *args, **kwargs):
        was_logged_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_logged_in:
            # After logout() flushed the session: the message travels in the messages cookie.
            messages.info(request, "You are logged out.")
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's own password (a new teacher replaces the one an admin handed over)."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)
        clear_failures(self.request.user)
        messages.success(self.request, "Your password is changed.")
        return response


@login_required
def tokens(request):
    """The user's API tokens; POST creates one."""
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token, key = issue_token(request.user, form.cleaned_data["name"])
        request.session[NEW_TOKEN_SESSION_KEY] = {"id": token.pk, "key": key}
        return redirect("accounts:tokens")
    context = {
        "form": form,
        "tokens": request.user.api_tokens.all(),
        "new_token": request.session.pop(NEW_TOKEN_SESSION_KEY, None),
        "token_url": request.build_absolute_uri("/api/auth/token/"),
        "api_root": request.build_absolute_uri("/api/"),
    }
    return render(request, "accounts/tokens.html", context)


@login_required
@require_POST
def revoke(request, pk):
    """Revoke one of the user's tokens; another user's token id is a 404."""
    token = get_object_or_404(request.user.api_tokens, pk=pk)
    revoke_token(token)
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) revoked.")
    return redirect("accounts:tokens")


# --- people (admins only) -------------------------------------------------------------------

# The People page shows the latest audit entries; the Django admin lists them all.
AUDIT_LOG_SHOWN = 50


def _show_password_once(request, user, password: str) -> None:
    request.session[NEW_PASSWORD_SESSION_KEY] = {"username": user.username, "password": password}


@staff_required
def people(request):
    """Everyone's accounts; POST creates one, with a password shown once."""
    form = PersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user, password = create_person(
                data["username"],
                by=request.user,
                email=data["email"],
                is_staff=data["is_staff"],
                password=data["password"],
            )
        except ValidationError as exc:
            form.add_error("password", exc)
        else:
            _show_password_once(request, user, password)
            role = "admin" if user.is_staff else "teacher"
            messages.success(request, f"Account “{user.username}” created ({role}).")
            return redirect("accounts:people")
    people = list(get_user_model().objects.order_by("-is_active", "username"))
    locked = locked_accounts()
    for person in people:
        person.locked_out = person.get_username().casefold() in locked
    context = {
        "form": form,
        "people": people,
        "new_password": request.session.pop(NEW_PASSWORD_SESSION_KEY, None),
        "login_url": request.build_absolute_uri("/login/"),
        "audit_log": AuditEntry.objects.all()[:AUDIT_LOG_SHOWN],
    }
    return render(request, "accounts/people.html", context, status=400 if form.errors else 200)


def _person_action(view):
    """A People button: an admin's POST about the account in the URL. `view(request, person)`
    makes the change and returns what to say; a refusal (PeopleError) is said as an error."""

    @staff_required
    @require_POST
    @wraps(view)
    def wrapped(request, pk):
        person = get_object_or_404(get_user_model(), pk=pk)
        try:
            messages.success(request, view(request, person))
        except PeopleError as exc:
            messages.error(request, str(exc))
        return redirect("accounts:people")

    return wrapped


@_person_action
def person_active(request, person) -> str:
    """Deactivate (active=0) or reactivate (active=1) an account."""
    active = request.POST.get("active") == "1"
    set_active(person, active, by=request.user)
    if active:
        return f"“{person.username}” can log in again."
    return (
        f"“{person.username}” is deactivated: they can no longer log in or use the API. "
        "Their classrooms and results are kept."
    )


@_person_action
def person_password(request, person) -> str:
    """A new generated password for an account, shown once."""
    _show_password_once(request, person, reset_password(person, by=request.user))
    return f"New password set for “{person.username}”."


@_person_action
def person_role(request, person) -> str:
    """Make an account an admin (role=admin) or a teacher (role=teacher)."""
    set_role(person, request.POST.get("role") == "admin", by=request.user)
    return f"“{person.username}” is now {'an admin' if person.is_staff else 'a teacher'}."


@_person_action
def person_unlock(request, person) -> str:
    """Let an account locked by failed log-ins try again now, from every address."""
    unlock(person, by=request.user)
    return f"“{person.username}” can log in again now."

"""The log-in page (with the failed log-in limit) and the API tokens settings page."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .forms import LoginForm, TokenForm
from .services import issue_token, revoke_token

# The new secret travels through the session across the redirect and is popped on the next
# page view, so a reload neither shows it again nor creates a second token.
NEW_TOKEN_SESSION_KEY = "accounts_new_token"


class LoginView(auth_views.LoginView):
    """Django's log-in page; an attempt over the failed log-in limit answers 429."""

    authentication_form = LoginForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
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

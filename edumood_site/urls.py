from django.contrib import admin
from django.urls import include, path

from accounts.views import LoginView, LogoutView

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("django-admin/", admin.site.urls),
    path("api/", include("classifier.api.urls")),
    path("", include("classifier.urls")),
    path("", include("analytics.urls")),
    path("api/", include("edumood_site.api")),
    path("api/", include("analytics.api.urls")),
    path("api/", include("accounts.api.urls")),
    path("", include("accounts.urls")),
]

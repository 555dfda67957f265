from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ApiTokenViewSet, ObtainTokenView, PersonViewSet

router = SimpleRouter()
router.register("auth/tokens", ApiTokenViewSet, basename="api-tokens")
router.register("people", PersonViewSet, basename="person")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    *router.urls,
]

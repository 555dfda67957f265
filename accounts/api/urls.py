from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ApiTokenViewSet, ObtainTokenView

router = SimpleRouter()
router.register("auth/tokens", ApiTokenViewSet, basename="api-tokens")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    *router.urls,
]

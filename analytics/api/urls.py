from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ClassroomViewSet, CSVRenderer, PhotoViewSet, SessionViewSet

app_name = "analytics-api"

router = SimpleRouter()
router.register("classrooms", ClassroomViewSet, basename="classroom")
router.register("sessions", SessionViewSet, basename="session")
router.register("photos", PhotoViewSet, basename="photo")

# The contract names these `.../export.csv` without a trailing slash, so they are routed here
# rather than as router actions (which would add one).
csv_views = {"get": "export_csv"}
urlpatterns = [
    path(
        "classrooms/<int:pk>/export.csv",
        ClassroomViewSet.as_view(csv_views, renderer_classes=[CSVRenderer]),
        name="classroom-export",
    ),
    path(
        "sessions/<int:pk>/export.csv",
        SessionViewSet.as_view(csv_views, renderer_classes=[CSVRenderer]),
        name="session-export",
    ),
    *router.urls,
]

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("jobs", views.JobViewSet, basename="job")
router.register("model-versions", views.ModelVersionViewSet, basename="model-version")
router.register("audits", views.AuditViewSet, basename="audit")

urlpatterns = router.urls

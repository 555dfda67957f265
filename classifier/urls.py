from django.urls import path

from . import views

app_name = "classifier"

urlpatterns = [
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/new/<str:kind>/", views.job_start, name="job-start"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<int:pk>/retry/", views.job_retry, name="job-retry"),
    path("models/", views.model_list, name="models"),
    path("models/compare/", views.model_compare, name="model-compare"),
    path("models/<int:pk>/", views.model_detail, name="model"),
    path("models/<int:pk>/promote/", views.model_promote, name="model-promote"),
    path("audits/<int:pk>/", views.audit_detail, name="audit"),
    path("fairness/", views.fairness, name="fairness"),
    path("fairness/compare/", views.fairness_compare, name="fairness-compare"),
]

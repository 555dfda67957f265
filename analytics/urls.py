from django.urls import path

from . import views

app_name = "analytics"

urlpatterns = [
    path("classrooms/", views.classroom_list, name="classrooms"),
    path("classrooms/<int:pk>/", views.classroom_detail, name="classroom"),
    path("classrooms/<int:pk>/access/", views.access_log, name="access-log"),
    path("classrooms/<int:pk>/consent/", views.record_consent, name="consent"),
    path("classrooms/<int:pk>/retention/", views.update_retention, name="retention"),
    path("classrooms/<int:pk>/detection/", views.update_detection_mode, name="detection"),
    path("classrooms/<int:pk>/face-detail/", views.update_face_detail, name="face-detail"),
    path("classrooms/<int:pk>/activities/", views.update_activities, name="activities"),
    path("classrooms/<int:pk>/delete/", views.delete_classroom, name="classroom-delete"),
    path("classrooms/<int:pk>/sessions/new/", views.create_session, name="session-create"),
    path("classrooms/<int:pk>/dashboard/", views.dashboard, name="dashboard"),
    path("classrooms/<int:pk>/report/", views.report, name="report"),
    path("classrooms/<int:pk>/privacy/", views.privacy_receipt, name="privacy-receipt"),
    path("sessions/<int:pk>/", views.session_detail, name="session"),
    path("sessions/<int:pk>/note/", views.session_note, name="session-note"),
    path("sessions/<int:pk>/reanalyse/", views.reanalyse_session, name="session-reanalyse"),
    path("sessions/<int:pk>/delete/", views.delete_session, name="session-delete"),
    path("photos/<int:pk>/image", views.photo_image, name="photo-image"),
]

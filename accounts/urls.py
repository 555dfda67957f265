from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("account/password/", views.PasswordChangeView.as_view(), name="password"),
    path("account/tokens/", views.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", views.revoke, name="revoke"),
    path("people/", views.people, name="people"),
    path("people/<int:pk>/active/", views.person_active, name="person-active"),
    path("people/<int:pk>/password/", views.person_password, name="person-password"),
    path("people/<int:pk>/role/", views.person_role, name="person-role"),
    path("people/<int:pk>/unlock/", views.person_unlock, name="person-unlock"),
]

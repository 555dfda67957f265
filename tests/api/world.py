"""The objects the API tests point at, created on first use through the API by their owner.

Teacher A owns the classrooms, sessions, photos and a spare token; the admin owns datasets and
jobs. Only what the API cannot create without running a long job (a dataset version, an audit)
is made with the ORM. A removed route fails the tests that need it.
"""

import io
import zipfile

from PIL import Image

from accounts.services import issue_token

from .conftest import PASSWORD


def png_bytes(size=(64, 48), colour=(120, 90, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def dataset_zip() -> bytes:
    """A tiny labeled dataset: two classes of 48x48 grayscale face crops."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label, shade in (("happy", 200), ("sad", 60)):
            for index in range(3):
                image = io.BytesIO()
                Image.new("L", (48, 48), shade + index).save(image, "PNG")
                archive.writestr(f"{label}/{index}.png", image.getvalue())
    return buffer.getvalue()


class World:
    """Lazily created objects, each an id, shared by the rows of one test."""

    def __init__(self, users: dict, clients: dict, request):
        self.users = users
        self.clients = clients
        self.request = request
        self._ids = {}

    def __getitem__(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = getattr(self, f"_make_{name}")()
        return self._ids[name]

    def call(self, role, method, path, data=None, multipart=False):
        client = self.clients[role]
        fmt = "multipart" if multipart else "json"
        return getattr(client, method.lower())(path, data, format=fmt)

    def _expect(self, response, status, what):
        assert response.status_code == status, (
            f"creating {what}: {response.status_code} {response.content[:500]!r}"
        )
        return response.json()

    def _make_token(self):
        token, _ = issue_token(self.users["teacher_a"], "spare")
        return token.pk

    def _new_classroom(self, name):
        response = self.call(
            "teacher_a", "POST", "/api/classrooms/", CLASSROOM_BODY | {"name": name}
        )
        return self._expect(response, 201, "a classroom")["id"]

    def _make_bare_classroom(self):
        return self._new_classroom("No consent yet")

    def _make_classroom(self):
        classroom = self._new_classroom("Maths 7b")
        response = self.call(
            "teacher_a", "POST", f"/api/classrooms/{classroom}/consent/", CONSENT_BODY
        )
        self._expect(response, 201, "consent")
        return classroom

    def _new_session(self, classroom):
        body = session_body(classroom)
        return self._expect(
            self.call("teacher_a", "POST", "/api/sessions/", body), 201, "a session"
        )["id"]

    def _make_session(self):
        return self._new_session(self["classroom"])

    def _make_bare_session(self):
        return self._new_session(self["bare_classroom"])

    def _make_photo(self):
        path = f"/api/sessions/{self['session']}/photos/"
        response = self.call("teacher_a", "POST", path, photo_upload(), multipart=True)
        return self._expect(response, 202, "a photo")["photos"][0]["id"]

    def _upload_dataset(self):
        response = self.call("admin", "POST", "/api/datasets/", dataset_upload(), multipart=True)
        return self._expect(response, 202, "a dataset")

    def _make_dataset(self):
        started = self._upload_dataset()
        self._ids["job"] = started["job"]
        return started["dataset"]

    def _make_job(self):
        self["dataset"]
        return self._ids["job"]

    def _make_model_version(self):
        return self.request.getfixturevalue("model_version").pk

    def _make_dataset_version(self):
        from classifier.models import Dataset, DatasetVersion

        version = DatasetVersion.objects.create(
            dataset=Dataset.objects.get(pk=self["dataset"]),
            number=1,
            content_hash="0" * 64,
            classes=["happy", "sad"],
            size=6,
            class_counts={"happy": 3, "sad": 3},
        )
        return version.pk

    def _make_person(self):
        from django.contrib.auth import get_user_model

        return get_user_model().objects.create_user("carol", password=PASSWORD).pk

    def _make_superuser(self):
        from django.contrib.auth import get_user_model

        return get_user_model().objects.create_superuser("root", password=PASSWORD).pk

    def _make_audit(self):
        from classifier.models import AuditReport

        audit = AuditReport.objects.create(
            model_version_id=self["model_version"],
            dataset_version_id=self["dataset_version"],
            attributes=["age_group"],
            source="annotator",
            result={},
        )
        return audit.pk


CLASSROOM_BODY = {"name": "History 9a", "subject": "History"}
CONSENT_BODY = {
    "obtained_from": "Parents of every pupil, by signed form",
    "method": "written",
    "obtained_on": "2024-09-02",
    "notes": "Forms kept by the school office.",
}


def session_body(classroom):
    return {
        "classroom": classroom,
        "title": "Fractions",
        "started_at": "2024-10-01T09:00:00Z",
        "kind": "in_person",
    }


def photo_upload():
    return {"image": [named(png_bytes(), "class.png")]}


def named(data: bytes, name: str):
    file = io.BytesIO(data)
    file.name = name
    return file


def dataset_upload():
    return {"name": "tiny", "file": named(dataset_zip(), "tiny.zip")}


def token_body():
    return {"username": "teacher_a", "password": PASSWORD}

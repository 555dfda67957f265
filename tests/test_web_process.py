"""What a web process loads: no request path may pull in torch (about 470 MB and 6 s).

Torch, torchvision and onnxruntime load only where models run (workers, commands). The test
below starts a real web process (`manage.py runserver`) on a database holding one object of
every kind (made through the code paths a worker runs: an import, training, evaluation,
k-fold, audit and mitigation jobs, an analysed photo), serves it every route of the URL map as
an admin and as a teacher, plus the writes that did or might load it (dataset uploads did;
retention to blur, a photo upload, a job start) and an empty form to every route that only takes
writes, and then reads the modules the process holds.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, wait_until

MODEL_RUNTIMES = ("torch", "torchvision", "onnxruntime")
PASSWORD = "a-Long-pass-123"


def _loaded_runtimes(modules) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in MODEL_RUNTIMES)


def _runtimes_after(code: str) -> list[str]:
    """The model runtimes' modules loaded once `code` ran in a fresh Django process."""
    code = f"import sys, json, django; django.setup(); {code}; print(json.dumps(list(sys.modules)))"
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "edumood_site.settings", "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return _loaded_runtimes(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_url_tree_leaves_torch_out():
    assert _runtimes_after("import edumood_site.urls") == []


# --- one object of every kind ---------------------------------------------------------------


def make_world() -> dict:
    """Objects for every route to name, made as workers make them; returns their ids.

    Runs in its own process (it trains and analyses, so it loads torch: the web process must
    not). Admin and teacher each own a classroom (retention: keep, so a later switch to blur
    has originals to blur), a session and an analysed photo of drawn faces.
    """
    import io

    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.contenttypes.models import ContentType
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.choices import AuditAction
    from accounts.services import audit as audit_log
    from accounts.services import issue_token
    from analytics import services
    from analytics.choices import AccessAction, Retention
    from analytics.models import Classroom, Photo, Session
    from classifier.choices import JobKind
    from classifier.jobs import create_job, run_job, start_import
    from classifier.models import Job
    from classifier.services import register_default_model
    from tests.analytics.conftest import make_classroom
    from tests.classifier.conftest import FAST_TRAIN, dataset_zip_bytes
    from tests.photos import drawn_group_photo

    users = get_user_model().objects
    people = {
        "admin": users.create_superuser("admin", password=PASSWORD),
        "teacher": users.create_user("teacher", password=PASSWORD),
    }
    ids = {"person": users.create_user("carol", password=PASSWORD).pk}
    register_default_model()
    Group.objects.create(name="office")

    def run(job) -> Job:
        run_job(job.pk)
        job = Job.objects.get(pk=job.pk)
        assert job.status == "succeeded", (job.kind, job.error)
        return job

    def start(kind, params) -> dict:
        return run(create_job(kind, params, user=people["admin"])).result

    zip_file = SimpleUploadedFile("faces.zip", dataset_zip_bytes(), "application/zip")
    dataset, job = start_import("faces", user=people["admin"], upload=zip_file)
    version = run(job).result["dataset_version"]
    trained = start(JobKind.TRAIN, {**FAST_TRAIN, "dataset_version": version})["model_version"]
    start(JobKind.EVALUATE, {"model_version": trained, "dataset_version": version})
    audit = start(
        JobKind.AUDIT, {"model_version": trained, "dataset_version": version, "min_group_size": 2}
    )["audit"]
    start(JobKind.MITIGATE, {"model_version": trained, "dataset_version": version,
                             "attribute": "gender", "epochs": 1})  # fmt: skip
    kfold = create_job(JobKind.KFOLD, {**FAST_TRAIN, "dataset_version": version, "k": 2})
    run(kfold)  # its page draws a figure per request
    ids.update(dataset=dataset.pk, dataset_version=version, model_version=trained, audit=audit,
               job=kfold.pk)  # fmt: skip

    for role, user in people.items():
        classroom = make_classroom(user, name=f"{role}'s class", retention=Retention.KEEP)
        session = Session.objects.create(classroom=classroom, title="Fractions")
        buffer = io.BytesIO()
        drawn_group_photo().save(buffer, "JPEG")
        services.upload_photos(session, [SimpleUploadedFile("class.jpg", buffer.getvalue())])
        photo = Photo.objects.get(session=session)
        services.analyse_photo(photo.pk)
        photo.refresh_from_db()
        assert photo.status == "done" and photo.faces.exists(), photo.failure_reason
        ids[role] = {
            "classroom": classroom.pk,
            "session": session.pk,
            "photo": photo.pk,
            "token": issue_token(user, "integration")[0].pk,
        }
        services.record_access(user, AccessAction.VIEWED_SESSION, classroom, session=session)
        audit_log(user, AuditAction.RETENTION, classroom, old="blur", new="keep")
    ids["admin_objects"] = {
        f"{model._meta.app_label}/{model._meta.model_name}": model.objects.order_by("pk")
        .values_list("pk", flat=True)
        .first()
        for model in admin.site._registry
    }
    ids["content_type"] = ContentType.objects.get_for_model(Classroom).pk
    return ids


# --- every route, filled with those objects -------------------------------------------------


def routes() -> list[str]:
    """Every URL pattern of the URL map, as the pattern texts of its path joined."""
    from django.urls import URLResolver, get_resolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, text)
            else:
                yield text

    return list(walk(get_resolver().url_patterns))


# What a route's `pk` names, by the path segment before it.
OBJECT_OF_SEGMENT = {
    "datasets": "dataset", "jobs": "job", "models": "model_version",
    "model-versions": "model_version", "audits": "audit", "classrooms": "classroom",
    "sessions": "session", "photos": "photo", "tokens": "token", "people": "person",
}  # fmt: skip
PLACEHOLDER = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def fill(route: str, world: dict, role: str) -> list[str]:
    """The paths that request `route` with real objects (one per job kind for `kind`)."""
    from classifier.forms import JOB_FORMS

    owned = world[role]

    def value(match) -> str:
        name = match[1] or match[2]
        before = route[: match.start()].rstrip("/").replace("^", "").split("/")[-1]
        if name == "pk":
            key = OBJECT_OF_SEGMENT[before]
            return str(owned.get(key, world.get(key)))
        if name == "object_id" and not route.startswith("django-admin/r/"):
            return str(world["admin_objects"]["/".join(route[: match.start()].split("/")[-3:-1])])
        return str(
            {
                "format": "json", "app_label": "classifier", "url": "nowhere/",
                "content_type_id": world["content_type"], "object_id": owned["classroom"],
                "id": world["person"], "kind": "{kind}",
            }[name]
        )  # fmt: skip

    path = PLACEHOLDER.sub(value, route)
    path = "/" + path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    if "{kind}" in path:
        return [path.replace("{kind}", kind) for kind in JOB_FORMS]
    return [path]


class Browser:
    """A logged-in requests session that sends Django's CSRF token with every POST."""

    def __init__(self, url: str, username: str):
        import requests

        self.url, self.http = url, requests.Session()
        self.http.get(f"{url}/login/", timeout=30)
        answer = self.post("/login/", {"username": username, "password": PASSWORD})
        assert answer.status_code == 302, answer.text[:500]

    def get(self, path: str):
        return self.http.get(self.url + path, allow_redirects=False, timeout=120)

    def post(self, path: str, data=None, method: str = "POST", **body):
        headers = {"X-CSRFToken": self.http.cookies.get("csrftoken", ""), "Referer": self.url}
        return self.http.request(
            method, self.url + path, data=data, headers=headers, allow_redirects=False,
            timeout=120, **body,
        )  # fmt: skip


def known_offenders(browsers: dict, world: dict) -> list[tuple[str, int]]:
    """The writes that loaded torch (dataset uploads) or were named for it (blurring), and
    their statuses."""
    from tests.api.world import dataset_zip, png_bytes

    admin, teacher = browsers["admin"], browsers["teacher"]
    answers = [
        # Retention to blur, on the classroom page (confirmed) and through the API.
        teacher.post(
            f"/classrooms/{world['teacher']['classroom']}/retention/",
            {"retention": "blur", "confirmed": "yes"},
        ),
        admin.post(
            f"/api/classrooms/{world['admin']['classroom']}/",
            method="PATCH",
            json={"retention": "blur"},
        ),
        # Dataset uploads: the page's form and the API.
        admin.post(
            "/datasets/",
            {"name": "more faces", "attribute_source": "annotator", "face_crop": "auto"},
            files={"file": ("faces.zip", dataset_zip(), "application/zip")},
        ),
        admin.post(
            "/api/datasets/",
            {"name": "api faces"},
            files={"file": ("faces.zip", dataset_zip(), "application/zip")},
        ),
        # A photo upload, and a job started from its form.
        teacher.post(
            f"/api/sessions/{world['teacher']['session']}/photos/",
            files={"image": ("class.png", png_bytes(), "image/png")},
        ),
        admin.post(
            "/jobs/new/evaluate/",
            {"model_version": world["model_version"], "dataset_version": world["dataset_version"]},
        ),
    ]
    return [(answer.request.method + " " + answer.request.path_url, answer.status_code)
            for answer in answers]  # fmt: skip


# The web process, as `manage.py runserver --noreload` runs it, noting the first request after
# which a model runtime was loaded; on SIGTERM it writes its modules and that request.
SERVE = f"""
import json, os, signal, sys
import django.core.handlers.wsgi as wsgi
RUNTIMES = {MODEL_RUNTIMES!r}
first = []
def loaded():
    return any(name in sys.modules for name in RUNTIMES)
def report(*_):
    with open(os.environ["EDUMOOD_TEST_MODULES"], "w") as out:
        json.dump({{"modules": sorted(sys.modules), "first_loaded_by": first[:1]}}, out)
    os._exit(0)
handle = wsgi.WSGIHandler.__call__
def watched(self, environ, start_response):
    if not first and loaded():
        first.append("start-up")
    response = handle(self, environ, start_response)
    if not first and loaded():
        first.append(environ["REQUEST_METHOD"] + " " + environ["PATH_INFO"])
    return response
wsgi.WSGIHandler.__call__ = watched
signal.signal(signal.SIGTERM, report)
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "runserver", sys.argv[1], "--noreload"])
"""


@pytest.mark.timeout(900)
def test_serving_every_route_leaves_the_model_runtimes_out(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL", "DATABASE_URL"}},
        "DEBUG": "true",
        "EDUMOOD_VAR_DIR": str(tmp_path / "var"),
        "EDUMOOD_DEVICE": "cpu",
        "EDUMOOD_TEST_MODULES": str(tmp_path / "modules.json"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    made = subprocess.run(
        [sys.executable, "-c", "import json, django; django.setup(); "
         "from tests.test_web_process import make_world; print(json.dumps(make_world()))"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "edumood_site.settings"},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    world = json.loads(made.stdout.splitlines()[-1])

    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "web.log").open("wb")
    web = subprocess.Popen(
        [sys.executable, "-c", SERVE, address], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        import requests

        url = f"http://{address}"

        def answers():
            try:
                return requests.get(f"{url}/healthz", timeout=5).status_code > 0
            except requests.RequestException:
                return web.poll() is not None

        wait_until(answers, 120, 0.5, "the web server to answer")
        assert web.poll() is None, (tmp_path / "web.log").read_text()[-3000:]
        browsers = {role: Browser(url, role) for role in ("admin", "teacher")}
        # Log-outs last: a GET that logged out would leave the rest unauthenticated.
        every = sorted(routes(), key=lambda route: "logout" in route)
        served = {}
        for route in every:
            for role, browser in browsers.items():
                for path in fill(route, world, role):
                    served.setdefault(route, []).append((role, path, browser.get(path).status_code))
        writes = known_offenders(browsers, world)
        # The routes that only take writes (405 to a GET) run their views with an empty form:
        # each must answer without a server error and load no runtime. Deleting routes last,
        # so the other writes still find their objects, and log-outs after them.
        write_only = sorted(
            {(role, path) for answers in served.values() for role, path, status in answers
             if status == 405},
            key=lambda role_path: ("logout" in role_path[1], "delete" in role_path[1]),
        )  # fmt: skip
        posted = [(role, path, browsers[role].post(path, {}).status_code)
                  for role, path in write_only]  # fmt: skip
        web.send_signal(signal.SIGTERM)
        web.wait(30)
    finally:
        if web.poll() is None:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait(10)
        log.close()

    def reached(route: str, status: int) -> bool:
        # /healthz answers 503 without a worker: none runs beside this web process.
        return status < 400 or status == 405 or (route, status) == ("healthz", 503)

    errors = [(route, answer) for route, answers in served.items() for answer in answers
              if answer[2] >= 500 and not reached(route, answer[2])]  # fmt: skip
    assert errors == [], errors
    # Each route reached its view with a real object for at least one of the two roles.
    unserved = [route for route, answers in served.items()
                if not any(reached(route, status) for *_, status in answers)]  # fmt: skip
    assert set(unserved) <= {"django-admin/(?P<url>.*)$"}, unserved  # the admin's catch-all
    assert all(status < 400 for _, status in writes), writes
    assert len(posted) >= 10 and [p for p in posted if p[2] >= 500] == [], posted
    requests_made = sum(len(answers) for answers in served.values()) + len(writes) + len(posted)
    held = json.loads(Path(env["EDUMOOD_TEST_MODULES"]).read_text())
    runtimes = _loaded_runtimes(held["modules"])
    print(
        f"served {len(served)} routes in {requests_made} requests; the process then held "
        f"{len(held['modules'])} modules, {len(runtimes)} of {', '.join(MODEL_RUNTIMES)}"
    )
    assert runtimes == [], f"first loaded after {held['first_loaded_by']}: {runtimes[:5]}"

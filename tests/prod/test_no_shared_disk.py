"""Web and workers as on separate hosts (issue 26): each process has its own empty var/ and media
folder, and they share nothing but PostgreSQL, Redis and a private S3 bucket (moto's server on
loopback, with the settings MinIO or a cloud bucket takes). Every request over HTTP; after each
test no host's media folder holds a file. `make test-prod` runs these before tests/prod's others.
"""

import re

import pytest
import requests

from .conftest import Api, group_photos
from .stack import ProdStack
from .test_stack import import_dataset, new_session, poll, train

pytestmark = pytest.mark.prod

TEACHER_PASSWORD = "Bucket-teacher-pass-9"


@pytest.fixture(scope="module")
def bucket_stack():
    with ProdStack(storage="s3") as prod:
        yield prod


@pytest.fixture(autouse=True)
def nothing_on_local_disk(bucket_stack):
    yield
    assert bucket_stack.media_files() == []


@pytest.fixture(scope="module")
def teacher(bucket_stack):
    tokens = bucket_stack.create_users([("bucket-teacher", TEACHER_PASSWORD, False)])
    return Api(bucket_stack.url, tokens["bucket-teacher"])


@pytest.fixture(scope="module")
def admin(bucket_stack):
    return Api(bucket_stack.url, bucket_stack.admin_token())


def browser(stack: ProdStack, username: str, password: str) -> requests.Session:
    """A logged-in browser session (the photo pages are for logged-in people, not tokens).
    Loopback has no TLS proxy: the secure cookies are sent back over http as a browser behind
    the proxy would send them over https."""
    web = requests.Session()
    page = web.get(f"{stack.url}/login/", timeout=60)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    for cookie in web.cookies:
        cookie.secure = False
    reply = web.post(
        f"{stack.url}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=60,
    )
    assert reply.status_code == 302, reply.text[:500]
    for cookie in web.cookies:
        cookie.secure = False
    return web


def upload(api: Api, session: int, count: int, offset: int = 0) -> list[int]:
    photos = group_photos(count + offset)[offset:]
    reply = api.post(
        f"/api/sessions/{session}/photos/",
        files=[("image", (name, data, "image/jpeg")) for name, data in photos],
    )
    assert reply.status_code == 202, reply.text
    return [photo["id"] for photo in reply.json()["photos"]]


def analysed(api: Api, ids: list[int], timeout: float = 180) -> list[dict]:
    rows = poll(
        lambda: [api.get(f"/api/photos/{pk}/").json() for pk in ids],
        lambda rows: all(row["status"] in ("done", "failed") for row in rows),
        timeout,
        "the photos to be analysed",
    )
    assert [row["status"] for row in rows] == ["done"] * len(ids), rows
    return rows


def session_keys(stack: ProdStack, api: Api, session: int) -> list[str]:
    """The keys of a session's photos in the bucket (photos/<classroom>/<session>/...)."""
    return [
        key for key in stack.s3.keys(stack.bucket, "photos/") if key.split("/")[2] == str(session)
    ]


def test_an_upload_is_analysed_and_its_blurred_copy_served_from_the_bucket(bucket_stack, teacher):
    session = new_session(teacher)
    rows = analysed(teacher, upload(teacher, session, 2))
    assert all(row["image_state"] == "blurred" for row in rows)
    keys = session_keys(bucket_stack, teacher, session)
    assert len(keys) == 2  # the blurred copies only: the originals are gone from the bucket
    web = browser(bucket_stack, "bucket-teacher", TEACHER_PASSWORD)
    for row in rows:
        served = web.get(bucket_stack.url + row["image_url"], timeout=60)
        assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
        stored = [
            bucket_stack.s3.client().get_object(Bucket=bucket_stack.bucket, Key=key)["Body"].read()
            for key in keys
        ]
        assert served.content in stored
    anonymous = requests.get(
        bucket_stack.url + rows[0]["image_url"], allow_redirects=False, timeout=60
    )
    assert anonymous.status_code == 302 and "/login/" in anonymous.headers["Location"]


def test_retention_and_deletion_remove_the_objects_from_the_bucket(bucket_stack, teacher):
    session = new_session(teacher)
    classroom = teacher.get(f"/api/sessions/{session}/").json()["classroom"]
    assert teacher.patch(f"/api/classrooms/{classroom}/", json={"retention": "keep"}).ok
    ids = upload(teacher, session, 2)
    analysed(teacher, ids)
    assert len(session_keys(bucket_stack, teacher, session)) == 2  # the originals, kept
    changed = teacher.patch(f"/api/classrooms/{classroom}/", json={"retention": "delete"})
    assert changed.status_code == 200, changed.text
    poll(  # a worker applies the new setting once the change is committed (set_retention)
        lambda: (
            {teacher.get(f"/api/photos/{pk}/").json()["image_state"] for pk in ids},
            session_keys(bucket_stack, teacher, session),
        ),
        lambda state: state == ({"deleted"}, []),
        60,
        "the retention change to delete the originals from the bucket",
    )

    assert teacher.patch(f"/api/classrooms/{classroom}/", json={"retention": "keep"}).ok
    other = teacher.post(
        "/api/sessions/",
        json={"classroom": classroom, "title": "Decimals", "started_at": "2024-10-02T09:00Z"},
    ).json()["id"]
    analysed(teacher, upload(teacher, other, 1))
    assert len(session_keys(bucket_stack, teacher, other)) == 1
    assert teacher.delete(f"/api/sessions/{other}/").status_code == 204
    assert session_keys(bucket_stack, teacher, other) == []


def test_an_analysis_whose_worker_is_killed_is_done_by_the_next_worker(bucket_stack, teacher):
    session = new_session(teacher)
    ids = upload(teacher, session, 4, offset=2)
    poll(
        lambda: [teacher.get(f"/api/photos/{pk}/").json()["status"] for pk in ids],
        lambda statuses: "analysing" in statuses,
        120,
        "an analysis to start",
    )
    bucket_stack.services["worker-inference"].kill()
    statuses = [teacher.get(f"/api/photos/{pk}/").json()["status"] for pk in ids]
    assert "analysing" in statuses  # what the crash leaves behind
    bucket_stack.start_worker("inference", bucket_stack.inference_concurrency)
    analysed(teacher, ids, timeout=240)
    attempts = bucket_stack.manage(
        "shell", "-c",
        "from analytics.models import Photo; "
        f"print(max(Photo.objects.filter(pk__in={ids}).values_list('attempts', flat=True)))",
    )  # fmt: skip
    assert int(attempts.strip().splitlines()[-1]) >= 2  # the killed analysis ran again


def test_a_model_trained_on_one_host_serves_on_another(bucket_stack, admin, teacher):
    """Import and training on the training worker, promotion on the web, analysis on the
    inference worker: the checkpoint reaches it through the bucket alone."""
    trained = train(admin, import_dataset(admin, "bucket-faces"))
    version = trained["model_version"]
    keys = bucket_stack.s3.keys(bucket_stack.bucket)
    assert not [key for key in keys if key.startswith(("checkpoints/", "datasets/uploads/"))]
    assert len([key for key in keys if key.startswith("models/")]) == 2  # shipped + trained
    shipped = admin.get("/api/model-versions/", params={"source": "shipped"}).json()["results"]
    promoted = admin.post(f"/api/model-versions/{version}/promote/", json={"confirm": True})
    assert promoted.status_code == 200, promoted.text
    try:
        session = new_session(teacher)
        (row,) = analysed(teacher, upload(teacher, session, 1))
        assert row["model_version"] == version
    finally:
        admin.post(f"/api/model-versions/{shipped[0]['id']}/promote/", json={"confirm": True})

"""Pages at a phone's 390 px width in Chromium: admin chart pages fit the screen and their
toolbars never cover chart titles, the
session's shares table shows every column without sideways scrolling, and the dashboard's
headline says whether engagement changed beyond doubt."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics import services
from analytics.models import Session
from classifier.choices import JobKind, JobStatus
from classifier.models import AuditReport, Dataset, DatasetVersion, Job
from classifier.services import set_calibration
from tests.analytics.conftest import READ, add_faces, calibration, make_classroom, make_user
from tests.browser.conftest import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _login(page, base_url, username, password):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def _overlap(a: dict | None, b: dict | None) -> bool:
    if not (a and b):
        return False
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def _admin_charts(model_version) -> dict[str, str]:
    """A model page with training curves, confusion matrices and a k-fold chart, and an audit
    page with a fairness chart: every kind of admin chart, from stored results."""
    classes = ["angry", "happy", "sad"]
    model_version.history = [
        {
            "epoch": e,
            "loss": 1.5 - 0.2 * e,
            "accuracy": 0.3 + 0.1 * e,
            "val_accuracy": 0.3 + 0.08 * e,
        }
        for e in range(1, 6)
    ]
    model_version.metrics = {
        **model_version.metrics, "classes": classes,
        "confusion_matrix": [[5, 1, 0], [1, 6, 1], [0, 2, 4]],
        "confusion_matrix_normalised": [[0.83, 0.17, 0], [0.13, 0.75, 0.13], [0, 0.33, 0.67]],
    }  # fmt: skip
    model_version.save()
    # A result shaped as the k-fold handler writes it, so the page shows what admins see.
    fold = {"accuracy": 0.6, "macro_precision": 0.55, "macro_recall": 0.5, "macro_f1": 0.52}
    folds = [{"fold": i, "n_train": 16, "n_val": 0, "n_test": 8, **fold} for i in range(3)]
    Job.objects.create(
        kind=JobKind.KFOLD, status=JobStatus.SUCCEEDED, progress=1.0,
        params={"model_version": model_version.pk, "k": 3},
        result={"k": 3, "n": 24, "config": {"arch": "edu-vgg-s", "epochs": 2}, "folds": folds,
                "mean": fold, "std": dict.fromkeys(fold, 0.0)},
    )  # fmt: skip
    dataset = Dataset.objects.create(name="Faces")
    version = DatasetVersion.objects.create(
        dataset=dataset, number=1, content_hash="0" * 64, classes=classes, size=24,
        class_counts=dict.fromkeys(classes, 8),
    )  # fmt: skip

    def group(n, accuracy):
        scores = ("accuracy", "ci_low", "ci_high", "macro_precision", "macro_recall", "macro_f1")
        return {"n": n, "small": n < 5} | dict.fromkeys(scores, accuracy)

    table = {
        "overall": group(24, 0.6), "groups": {"Young": group(12, 0.7), "Senior": group(12, 0.5)},
        "best_group": "Young", "disparity": {"accuracy_difference": 0.2, "accuracy_ratio": 0.71},
        "missing": 0,
    }  # fmt: skip
    audit = AuditReport.objects.create(
        model_version=model_version, dataset_version=version, attributes=["age_bin"],
        source="annotator",
        result={"accuracy": 0.6, "findings": [], "attributes": {"age_bin": table}},
    )  # fmt: skip
    return {"model": f"/models/{model_version.pk}/", "audit": f"/audits/{audit.pk}/"}


def test_chart_toolbars_never_cover_titles_on_a_phone(live_server, model_version, out_dir):
    from playwright.sync_api import sync_playwright

    pages = _admin_charts(model_version)
    get_user_model().objects.create_user("boss", password="a-long-test-password", is_staff=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(**PHONE)
        _login(page, live_server.url, "boss", "a-long-test-password")
        checked = 0
        for name, path in pages.items():
            page.goto(live_server.url + path)
            charts = page.locator("[data-figure]")
            for index in range(charts.count()):
                chart = charts.nth(index)
                chart.locator(".main-svg").first.wait_for(state="visible")
                chart.scroll_into_view_if_needed()
                chart.tap()  # a tap is a phone's hover: it shows a toolbar that has one
                title = chart.locator(".gtitle").first.bounding_box()
                toolbar = chart.locator(".modebar").first
                box = toolbar.bounding_box() if toolbar.count() else None
                label = f"{name} chart {chart.get_attribute('data-figure')}"
                assert title is not None, f"{label} has no title"
                assert not _overlap(title, box), f"the toolbar covers the title of {label}"
                checked += 1
            page.screenshot(path=out_dir / f"{name}.png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the {name} page is {width} px wide on a 390 px phone"
        # Curves, two confusion matrices, a k-fold chart and the fairness chart.
        assert checked >= 5
        browser.close()


def test_the_session_shares_and_the_dashboard_headline_on_a_phone(
    live_server, model_version, out_dir
):
    from playwright.sync_api import expect, sync_playwright

    teacher = make_user("teacher")
    classroom = make_classroom(teacher)
    set_calibration(model_version, calibration(0))
    start = timezone.now() - timedelta(days=3)
    # 80 faces each, 20 % then 90 % Engaged: up beyond doubt.
    mixes = [READ * 8, ["Engaged"] * 72 + ["Bored"] * 8]
    sessions = []
    for day, states in enumerate(mixes):
        session = Session.objects.create(
            classroom=classroom, title=f"Lesson {day + 1}", started_at=start + timedelta(days=day)
        )
        add_faces(session, model_version, states)
        services.quantify_session(session.pk)
        sessions.append(session)

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(**PHONE)
        _login(page, live_server.url, "teacher", "pw-for-tests-1")
        page.goto(f"{live_server.url}/sessions/{sessions[0].pk}/")
        table = page.locator("table.shares")
        table.scroll_into_view_if_needed()
        page.locator("#summary").screenshot(path=out_dir / "1-session-shares.png")
        expect(page.locator('[data-range="Bored"]')).to_contain_text("–")
        wrap = table.locator("xpath=..")
        assert wrap.evaluate("n => n.scrollWidth <= n.clientWidth"), "the table scrolls sideways"
        cells = (
            table.locator("thead th").all() + table.locator("tbody tr").first.locator("td").all()
        )
        assert len(cells) == 10  # five headers, five cells of the first state
        for cell in cells:
            box = cell.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, cell.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        page.goto(f"{live_server.url}/classrooms/{classroom.pk}/dashboard/")
        headline = page.locator("#headline-change")
        expect(headline.locator("#headline-trend")).to_have_text("Up beyond doubt")
        expect(headline).to_contain_text("“Lesson 1” → “Lesson 2”: corrected 20% (90 % range")
        headline.scroll_into_view_if_needed()
        page.locator("#headline").screenshot(path=out_dir / "2-dashboard-headline.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        browser.close()

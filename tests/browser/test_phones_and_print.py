"""Issue 23 item 5 in Chromium: at 390 px the dashboard's charts use the card's width, the
within-session timeline's axis title clears its legend and the admin pages fit without sideways
scrolling; the printed report's chart labels are not clipped. Screenshots at 1366 and 390 px."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics import services
from analytics.models import Session
from classifier.choices import JobKind, JobStatus
from classifier.models import Job
from classifier.services import set_calibration
from tests.analytics.conftest import READ, add_faces, calibration, make_classroom, make_user
from tests.browser.test_people_and_registry import (
    LAPTOP,
    PASSWORD,
    PHONE,
    log_in,
)
from tests.browser.test_phone_layout import _admin_charts, _overlap

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# An A4 page less the report's 15 mm margins, in CSS pixels (charts.PRINT_WIDTH).
PRINTABLE_WIDTH = 680

# Elements of the page (charts' own inner boxes aside) that hold more than their width: on a
# phone those are what makes a reader scroll sideways.
SIDEWAYS = """() => [...document.querySelectorAll("main *")]
  .filter((n) => !n.closest(".js-plotly-plot") && n.scrollWidth > n.clientWidth + 1
    && ["auto", "scroll"].includes(getComputedStyle(n).overflowX))
  .map((n) => `${n.tagName.toLowerCase()}.${n.className} ${n.scrollWidth - n.clientWidth}px`)"""


def _both_widths(tab, out_dir, name):
    """Screenshots at 1366 and 390 px; what scrolls sideways at 390 px."""
    tab.set_viewport_size(LAPTOP)
    tab.wait_for_timeout(200)
    tab.screenshot(path=out_dir / f"{name}-1366.png", full_page=True)
    tab.set_viewport_size(PHONE)
    tab.wait_for_timeout(400)  # Plotly redraws at the new width
    tab.screenshot(path=out_dir / f"{name}-390.png", full_page=True)
    return tab.evaluate(SIDEWAYS) + (
        ["document"] if tab.evaluate("document.documentElement.scrollWidth") > 390 else []
    )


def test_admin_pages_fit_a_phone(
    live_server,
    page,  # noqa: F811 (the fixture imported above)
    model_version,
    out_dir,
):
    User = get_user_model()
    boss = User.objects.create_user("boss", password=PASSWORD, is_staff=True)
    for name in ("ada.lovelace-longname", "grace.hopper", "alan"):
        User.objects.create_user(name, email=f"{name}@a-long-school-domain.example")
    pages = _admin_charts(model_version)
    kfold = Job.objects.get(kind=JobKind.KFOLD)
    train = Job.objects.create(
        kind=JobKind.TRAIN, status=JobStatus.SUCCEEDED, requested_by=boss,
        params={"epochs": 2, "dataset_version": 1},
        log=[f"2026-12-02 10:00:{i:02} epoch {i}/20 loss=1.2345 accuracy=0.4567 "
             f"val_loss=1.3456 val_accuracy=0.4321 lr=0.000100 /a/long/path/without/spaces/"
             f"checkpoint-epoch-{i}.pt" for i in range(20)],
    )  # fmt: skip
    log_in(page, live_server.url, "boss", PASSWORD)
    paths = {
        "people": "/people/",
        "datasets": "/datasets/",
        "jobs": "/jobs/",
        "job-log": f"/jobs/{train.pk}/",
        "job-kfold": f"/jobs/{kfold.pk}/",
        "models": "/models/",
        "model": pages["model"],
    }
    sideways = {}
    for name, path in paths.items():
        page.goto(live_server.url + path)
        found = _both_widths(page, out_dir, name)
        if found:
            sideways[name] = found
    assert sideways == {}
    # On a phone each fold's row is a card of "metric: value" lines; the mean ± std row too.
    page.goto(live_server.url + paths["job-kfold"])
    summary = page.evaluate(
        """() => [...document.querySelectorAll("tr.summary td")]
          .filter((td) => getComputedStyle(td).display !== "none")
          .map((td) => getComputedStyle(td, "::before").content + td.textContent)"""
    )
    assert [line.split(":")[0] for line in summary] == [
        '"Accuracy',
        '"Macro P',
        '"Macro R',
        '"Macro F1',
    ], summary


def _dashboard_classroom(model_version, titles=("Lesson 1", "Lesson 2", "Lesson 3")):
    teacher = make_user("teacher")
    classroom = make_classroom(teacher)
    set_calibration(model_version, calibration(0))
    start = timezone.now() - timedelta(days=len(titles))
    for day, title in enumerate(titles):
        lesson = Session.objects.create(
            classroom=classroom, title=title, started_at=start + timedelta(days=day)
        )
        for _ in range(2):  # two photos of 20 faces: enough for the within-session line
            add_faces(lesson, model_version, READ * 5)
        services.quantify_session(lesson.pk)
    return classroom


def test_dashboard_charts_use_a_phones_width_and_the_timeline_title_clears_its_legend(
    live_server,
    page,  # noqa: F811 (the fixture imported above)
    model_version,
    out_dir,
):
    from playwright.sync_api import expect

    classroom = _dashboard_classroom(model_version)
    log_in(page, live_server.url, "teacher", "pw-for-tests-1")
    page.goto(f"{live_server.url}/classrooms/{classroom.pk}/dashboard/")
    assert _both_widths(page, out_dir, "dashboard") == []
    page.reload()  # drawn at the phone's width from the start, as a phone does
    page.wait_for_timeout(500)
    page.screenshot(path=out_dir / "dashboard-390-loaded.png", full_page=True)
    charts = page.locator("main .chart[data-figure]")
    assert charts.count() == 3  # trend, distribution, timeline (one kind only: no comparison)
    for index in range(charts.count()):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        card = chart.locator("xpath=..").bounding_box()
        plot = chart.locator(".nsewdrag").first.bounding_box()  # the plotting area itself
        name = chart.get_attribute("data-figure")
        assert chart.bounding_box()["width"] >= card["width"] - 34, name  # the card's padding
        assert plot["width"] >= 0.6 * card["width"], (name, plot, card)
    timeline = page.locator("#chart-timeline")
    timeline.scroll_into_view_if_needed()
    title = timeline.locator(".g-xtitle").bounding_box()
    legend = timeline.locator(".legend").bounding_box()
    assert not _overlap(title, legend), (title, legend)
    timeline.screenshot(path=out_dir / "timeline-390.png")

    # A session whose photos hold a few faces each: no line, and the page says why.
    quiz = Session.objects.create(classroom=classroom, title="Quiz")
    for _ in range(3):
        add_faces(quiz, model_version, READ[::2])  # 5 faces a photo
    page.goto(f"{live_server.url}/classrooms/{classroom.pk}/dashboard/?session={quiz.pk}")
    too_few = page.locator("#timeline-too-few")
    expect(too_few).to_contain_text("Not shown for “Quiz”: 0 of its 3 analysed photos have")
    expect(page.locator("#chart-timeline")).to_have_count(0)
    too_few.scroll_into_view_if_needed()
    assert _both_widths(page, out_dir, "timeline-too-few") == []


def test_the_printed_reports_chart_labels_are_not_clipped(
    live_server,
    page,  # noqa: F811 (the fixture imported above)
    model_version,
    out_dir,
):
    # A term of lessons with long names: slanted labels that reach the chart's edges.
    titles = [f"Fractions and decimals, part {n}" for n in range(1, 10)]
    classroom = _dashboard_classroom(model_version, titles)
    log_in(page, live_server.url, "teacher", "pw-for-tests-1")
    page.goto(f"{live_server.url}/classrooms/{classroom.pk}/report/")
    _both_widths(page, out_dir, "report")
    page.set_viewport_size({"width": PRINTABLE_WIDTH, "height": 1000})
    page.emulate_media(media="print")
    page.wait_for_timeout(300)
    page.screenshot(path=out_dir / "report-print.png", full_page=True)
    page.pdf(path=out_dir / "report.pdf", format="A4")
    assert page.evaluate("document.documentElement.scrollWidth") <= PRINTABLE_WIDTH
    for chart in page.locator(".print-chart").all():
        svg = chart.locator(".main-svg").first.bounding_box()
        name = chart.get_attribute("id")
        labels = chart.locator(
            ".xtick text, .ytick text, .g-xtitle text, .g-ytitle text, .legendtext"
        )
        assert labels.count() > 3, name
        assert svg["x"] + svg["width"] <= PRINTABLE_WIDTH, name
        legend = chart.locator(".legend").bounding_box()
        for tick in chart.locator(".xtick text").all():
            assert not _overlap(tick.bounding_box(), legend), (name, tick.text_content())
        for label in labels.all():
            box = label.bounding_box()
            assert (
                box["x"] >= svg["x"] - 1 and box["x"] + box["width"] <= svg["x"] + svg["width"] + 1
            ), (name, label.text_content(), box, svg)
            assert (
                box["y"] >= svg["y"] - 1
                and box["y"] + box["height"] <= svg["y"] + svg["height"] + 1
            ), (name, label.text_content(), box, svg)

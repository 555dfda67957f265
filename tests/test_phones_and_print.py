"""Issue 23 item 5, server side: what the pages send for phones and paper (the Chromium checks
are in tests/browser/test_phones_and_print.py)."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from analytics import charts

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def test_printed_charts_have_their_legend_above_the_plot_and_fit_the_page():
    figure = {"data": [], "layout": charts.LAYOUT | {"xaxis": charts.SESSION_AXIS}}
    printed = charts.for_print(figure)["layout"]
    assert printed["width"] == charts.PRINT_WIDTH == 680
    assert printed["legend"]["y"] > 1 and printed["legend"]["yanchor"] == "bottom"
    assert printed["legend"]["orientation"] == "h"  # the rest of the legend is kept
    assert figure["layout"]["legend"]["y"] < 0  # the screen's figure is left as it was


def test_phone_rules_are_for_screens_only_so_a_printed_page_keeps_the_report_layout():
    css = Path(finders.find("css/app.css")).read_text()
    widths = re.findall(r"@media ([^{]*max-width: 760px[^{]*)\{", css)
    assert widths == ["screen and (max-width: 760px) "]
    assert 'pre[data-field="log"] { white-space: pre-wrap;' in css


@pytest.mark.parametrize(
    "template",
    [
        "accounts/people.html",
        "classifier/dataset_list.html",
        "classifier/job_list.html",
        "classifier/_kfold.html",
        "classifier/model_list.html",
        "classifier/model_detail.html",
    ],
)
def test_admin_lists_stack_their_rows_on_a_phone(template):
    assert re.search(r'<table [^>]*class="[^"]*\bstack\b', (TEMPLATES / template).read_text())


def test_the_people_page_marks_its_table_to_stack(admin_client):
    page = admin_client.get(reverse("accounts:people")).content.decode()
    assert '<table id="people" class="stack">' in page

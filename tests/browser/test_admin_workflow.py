"""The admin journey in Chromium: upload a dataset, train with live progress, model page, audit."""

import pytest
from django.contrib.auth import get_user_model

from tests.browser.conftest import launch_chromium
from tests.classifier.conftest import dataset_zip_bytes

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_admin_uploads_trains_watches_progress_and_audits(
    live_server, worker_factory, settings, monkeypatch, tmp_path, out_dir
):
    from playwright.sync_api import expect, sync_playwright

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EDUMOOD_DEVICE = "cpu"
    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))  # the worker reads the same files
    monkeypatch.setenv("EDUMOOD_DEVICE", "cpu")
    archive = tmp_path / "faces.zip"
    archive.write_bytes(dataset_zip_bytes(per_class=48))
    worker_factory(stale_seconds=60)  # a busy machine must not look like a dead worker
    get_user_model().objects.create_user("boss", password="a-long-test-password", is_staff=True)

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: print("PAGEERROR", e))
        page.set_default_timeout(60_000)
        expect.set_options(timeout=90_000)  # jobs run on a real worker on a busy machine
        page.goto(f"{live_server.url}/datasets/")
        page.fill("#id_username", "boss")
        page.fill("#id_password", "a-long-test-password")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Datasets")

        page.fill("#import-form #id_name", "Generated faces")
        page.set_input_files("#import-form #id_file", str(archive))
        page.select_option("#import-form #id_attribute_source", "model-inferred")
        page.select_option("#import-form #id_face_crop", "never")
        page.click("#import-form button[type=submit]")
        expect(page.locator("[data-field=status]")).to_have_text("succeeded")
        page.click("text=Generated faces v1")
        expect(page.locator("[data-figure=class_distribution] .main-svg").first).to_be_visible()
        expect(page.locator("[data-figure=sample_grid] .main-svg").first).to_be_visible()
        page.screenshot(path=out_dir / "1-dataset.png", full_page=True)

        page.click("text=Train on this version")
        page.select_option("#id_arch", "edu-vgg-s")
        # Progress is written at most once a second: the job must outlast a few writes even on
        # an idle machine, where one epoch of these 96 faces takes well under a second.
        page.fill("#id_epochs", "6")
        # The duration estimate has no finished run to measure yet; the recipe's rest is folded.
        expect(page.locator("#estimate")).to_contain_text("No finished edu-vgg-s run here yet")
        page.click("#advanced summary")
        page.fill("#id_batch_size", "2")
        page.fill("#id_lr", "0.01")
        page.click("#job-form button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Train a model")
        seen = set()
        while page.locator("[data-field=status]").inner_text() != "succeeded":
            seen.add(page.locator("[data-field=percent]").inner_text())
            if "failed" in page.locator("[data-field=status]").inner_text():
                pytest.fail(page.locator("[data-field=error]").inner_text())
            if len(seen) == 2:
                page.screenshot(path=out_dir / "2-training-progress.png", full_page=True)
            page.wait_for_timeout(150)
        assert seen - {"0%", "100%"}, f"progress never showed between 0 and 100%: {seen}"
        expect(page.locator("[data-figure=live-curves] .main-svg").first).to_be_visible()
        page.screenshot(path=out_dir / "3-training-done.png", full_page=True)

        page.click("a.button:has-text('Model version')")
        expect(page.locator("#confusion-matrix .main-svg").first).to_be_visible()
        expect(page.locator("#metrics")).to_contain_text("Macro-F1")
        # Scored on 24 faces a class of its own upload: no headline figure.
        expect(page.locator("#metrics")).to_contain_text("not on a reference set")
        expect(page.locator("[data-flag=own_split]")).to_contain_text("its own training upload")
        page.screenshot(path=out_dir / "4-model.png", full_page=True)

        page.click("text=Bias audit")
        page.fill("#id_min_group_size", "5")
        page.click("#job-form button[type=submit]")
        expect(page.locator("[data-field=status]")).to_have_text("succeeded")
        page.click("a.button:has-text('Audit #')")
        expect(page.locator("#attribute-source")).to_contain_text("Model-inferred")
        expect(page.locator("[data-figure=audit_0] .main-svg").first).to_be_visible()
        page.screenshot(path=out_dir / "5-fairness.png", full_page=True)

        page.click("nav >> text=Fairness")
        expect(page.locator("#audits tbody tr")).to_have_count(1)
        page.screenshot(path=out_dir / "6-fairness-dashboard.png", full_page=True)

        page.click("nav >> text=Jobs")
        expect(page.locator("tbody tr")).to_have_count(3)  # import, train, audit
        expect(page.locator("[data-running]")).to_have_count(0)
        expect(page.locator("text=Retry with the same parameters")).to_have_count(0)
        page.screenshot(path=out_dir / "7-jobs.png", full_page=True)
        browser.close()

"""The MLflow UI, seen in a real headless browser: what a person looks for after a comparison.

Needs Debian's `chromium` (.ci/run installs it) and Python Playwright driving that system browser
(no browser download). Screenshots go to $SENTIMENT_SCREENSHOTS when set (the README's come
from there), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import mlflow_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")]


def _close_assistant(page) -> None:
    """MLflow 3 opens an assistant side panel on a fresh browser's first page; close it so the
    screenshot shows the runs (it stays closed for the next pages)."""
    close = page.locator("button[aria-label='Close']")
    if close.count():
        close.first.click()


def test_the_ui_shows_the_comparison_the_curves_and_the_registered_models(compared, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    uri, _, tmp = compared
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnn-vs-lstm")
    lstm = next(r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "lstm seed 1234")
    shots = Path(os.environ.get("SENTIMENT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with mlflow_server(uri, tmp, "--workers", "1") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            # The experiment's runs: the parent run, expanded into its children.
            page.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs")
            page.get_by_text("compare rnn vs lstm").first.wait_for(timeout=90_000)
            _close_assistant(page)
            page.locator("[role=row]", has_text="compare rnn vs lstm").locator("button").first.click()
            for child in ("lstm seed 1234", "rnn seed 1234", "tfidf-logreg"):
                page.get_by_text(child, exact=True).first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "mlflow_ui_runs.png"))
            # A child run's metric charts include valid_acc.
            page.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs/{lstm.info.run_id}/model-metrics")
            page.get_by_text("best_valid_acc", exact=True).first.wait_for(timeout=60_000)
            # Charts come in alphabetical order and render lazily: search, as a person would.
            page.get_by_placeholder("Search metric charts").fill("valid_acc")
            page.get_by_text("valid_acc", exact=True).filter(visible=True).first.wait_for(timeout=30_000)
            # The chart's legend names the run's valid_acc line.
            page.get_by_text("lstm seed 1234 (valid_acc)").filter(visible=True).first.wait_for(timeout=30_000)
            page.get_by_text("Step", exact=True).filter(visible=True).first.wait_for(timeout=30_000)  # drawn
            page.screenshot(path=str(shots / "mlflow_ui_run_metrics.png"))
            # The registry lists both models.
            page.goto(f"{base}/#/models")
            page.get_by_text("sentiment-lstm", exact=True).first.wait_for(timeout=60_000)
            assert page.get_by_text("sentiment-rnn", exact=True).count() >= 1
            page.screenshot(path=str(shots / "mlflow_ui_models.png"))
        finally:
            browser.close()
    assert all((shots / name).stat().st_size > 10_000 for name in
               ("mlflow_ui_runs.png", "mlflow_ui_run_metrics.png", "mlflow_ui_models.png"))

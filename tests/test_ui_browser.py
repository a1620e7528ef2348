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
from sentiment_core.tracking.store import ui_link

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run does)")]


def _close_assistant(page) -> None:
    """MLflow 3 opens an assistant side panel on a fresh browser's first page; close it so the
    screenshot shows the runs (it stays closed for the next pages)."""
    close = page.locator("button[aria-label='Close']")
    if close.count():
        close.first.click()


def _store():
    """The store to show: $SENTIMENT_UI_STORE (a folder with an mlflow.db, e.g. of a --quick run, for
    the README's pictures), else the tiny comparison every other test reads."""
    folder = os.environ.get("SENTIMENT_UI_STORE")
    return (f"sqlite:///{Path(folder) / 'mlflow.db'}", Path(folder)) if folder else None


def test_the_ui_shows_the_comparison_the_curves_and_the_registered_models(compared, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    uri, _, tmp = compared
    uri, tmp = _store() or (uri, tmp)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnn-vs-lstm")
    parent = next(r for r in client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])
                  if r.data.tags.get("kind") == "comparison")
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    lstm = next(r for r in children if r.data.params.get("cell") == "lstm")
    shots = Path(os.environ.get("SENTIMENT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with mlflow_server(uri, tmp, "--workers", "1") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 800})
            # The link every command prints: a fresh browser lands in the training view, not GenAI's.
            page.goto(ui_link(base, experiment.experiment_id))
            page.get_by_text(parent.info.run_name).first.wait_for(timeout=90_000)
            _close_assistant(page)
            assert page.get_by_text("Model registry", exact=True).count() >= 1
            assert page.get_by_text("Judges", exact=True).count() == 0  # the GenAI view's navigation
            page.locator("[role=row]", has_text=parent.info.run_name).locator("button").first.click()
            for child in ("lstm seed", "rnn seed", "tfidf-logreg"):
                page.get_by_text(child).first.wait_for(timeout=30_000)
            # The Source column names the script for every run; the Models column shows each trained
            # run's model (by its registered name and version), and "-" for the parent and the yardstick.
            page.get_by_text("compare_rnn_lstm.py").nth(len(children)).wait_for(timeout=30_000)
            cells = page.locator("[role=gridcell]").all_inner_texts()
            assert sum(cell == "compare_rnn_lstm.py" for cell in cells) == len(children) + 1, cells
            models = [cell.split()[0] for cell in cells if cell.startswith("sentiment-")]
            assert sorted(models) == sorted(f"sentiment-imdb-{c.data.params['cell']}" for c in children
                                            if "cell" in c.data.params), cells
            page.screenshot(path=str(shots / "mlflow_ui_runs.png"))
            # A child run's metric charts include valid_acc.
            page.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs/{lstm.info.run_id}/model-metrics"
                      "?workflowType=machine_learning")
            page.get_by_text("best_valid_acc", exact=True).first.wait_for(timeout=60_000)
            # Charts come in alphabetical order and render lazily: search, as a person would.
            page.get_by_placeholder("Search metric charts").fill("valid_acc")
            page.get_by_text("valid_acc", exact=True).filter(visible=True).first.wait_for(timeout=30_000)
            page.get_by_text(f"{lstm.info.run_name} (valid_acc)").filter(visible=True).first.wait_for(timeout=30_000)
            page.get_by_text("Step", exact=True).filter(visible=True).first.wait_for(timeout=30_000)  # drawn
            page.screenshot(path=str(shots / "mlflow_ui_run_metrics.png"))
            # The registry lists both models, named for their data.
            page.goto(f"{base}/#/models?workflowType=machine_learning")
            page.get_by_text("sentiment-imdb-lstm", exact=True).first.wait_for(timeout=60_000)
            assert page.get_by_text("sentiment-imdb-rnn", exact=True).count() >= 1
            page.screenshot(path=str(shots / "mlflow_ui_models.png"))
        finally:
            browser.close()
    assert all((shots / name).stat().st_size > 10_000 for name in
               ("mlflow_ui_runs.png", "mlflow_ui_run_metrics.png", "mlflow_ui_models.png"))

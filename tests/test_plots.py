"""`python -m tasks.plots`: DVC's plots page draws its curves with no network at all.

A tiny git + DVC repo with one top-level plot (the same shape as dvc.yaml's cnn curves), the
real `dvc plots show` through tasks.plots, then Debian's headless Chromium with every request
outside the page blocked: the Vega chart must render (an SVG/canvas inside `.vega-embed`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project_copy import REPO, git

CHROMIUM = Path("/usr/bin/chromium")
DVC_YAML = """plots:
  - loss:
      template: linear
      x: epoch
      y:
        curves.json: [train_loss, dev_loss]
"""


def plots_repo(root: Path) -> Path:
    root.mkdir()
    (root / "dvc.yaml").write_text(DVC_YAML)
    rows = [{"epoch": e, "train_loss": 1 / e, "dev_loss": 1.2 / e} for e in range(1, 6)]
    (root / "curves.json").write_text(json.dumps(rows))
    git(root, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    return root


def test_plots_page_has_no_cdn_and_renders_offline(tmp_path):
    root = plots_repo(tmp_path / "repo")
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run([sys.executable, "-m", "tasks.plots"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    page = root / "dvc_plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr" not in html and "<script src=" not in html
    assert "vegaEmbed(" in html

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs it (scripts/install-chromium)")
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--headless", "--no-sandbox"])
        tab = browser.new_page()

        def only_local(route):
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        tab.route("**/*", only_local)
        tab.goto(page.as_uri())
        tab.wait_for_selector(".vega-embed svg, .vega-embed canvas", timeout=60_000)
        if os.environ.get("UI_SCREENSHOTS_DIR"):
            tab.screenshot(path=str(Path(os.environ["UI_SCREENSHOTS_DIR"]) / "dvc-plots.png"),
                           full_page=True)
        browser.close()
    assert blocked == []


def test_help_runs_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tasks.plots", "--help"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "without internet" in done.stdout
    assert not (tmp_path / "dvc_plots").exists()

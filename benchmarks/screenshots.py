"""Screenshots of the result viewers with Debian's headless Chromium (evidence for docs/img/).

    .venv/bin/python benchmarks/screenshots.py projector LOGDIR OUT.png [SEARCH_WORD]
    .venv/bin/python benchmarks/screenshots.py mlflow-compare MLFLOW_DB OUT.png [EXPERIMENT]
    .venv/bin/python benchmarks/screenshots.py page HTML_FILE OUT.png   # e.g. dvc_plots/index.html

Each starts its server (TensorBoard / `mlflow ui`) on a free 127.0.0.1 port, loads the page,
waits for what should be visible, saves OUT.png and stops the server. `page` blocks every
request that is not a local file, so it shows what renders offline.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(argv: list[str], url: str) -> subprocess.Popen:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for loopback
    for _ in range(600):
        try:
            direct.open(url, timeout=5)
            return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"error: screenshots: {argv[0]} did not answer at {url}")


def browser_page(playwright, width: int = 1600, height: int = 1000):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    return browser, browser.new_page(viewport={"width": width, "height": height})


def projector(logdir: str, out: str, word: str = "movie") -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve([str(BIN / "tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
                  "--port", str(port)], base)
    try:
        with sync_playwright() as p:
            browser, page = browser_page(p)
            page.goto(f"{base}/#projector", timeout=300_000)
            # The projector's Polymer widgets are invisible to Playwright's selectors here (no
            # inputs found in any frame), so: wait for the checkpoint (29,901 x 100 floats) and
            # PCA, then click the inspector's search box by position (1600 x 1000 viewport).
            time.sleep(60)
            page.mouse.click(1400, 173)
            page.keyboard.type(word)
            page.keyboard.press("Enter")
            time.sleep(10)
            page.screenshot(path=out)
            browser.close()
    finally:
        proc.terminate()


def mlflow_compare(db: str, out: str, experiment: str = "w2v-cnn") -> None:
    import mlflow
    from playwright.sync_api import sync_playwright

    uri = f"sqlite:///{Path(db).resolve()}"
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    # the four embedding variants with Adam (make compare's Adadelta arm is a fifth)
    runs = [r for r in client.search_runs([exp.experiment_id], "tags.stage = 'cnn' and "
                                          "params.`cnn.optimizer` = 'adam'")
            if r.info.run_name.startswith("cnn-")]
    latest: dict[str, str] = {}
    for r in sorted(runs, key=lambda r: r.info.start_time):
        latest[r.info.run_name] = r.info.run_id
    ids = ",".join(f'"{i}"' for i in latest.values())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve([str(BIN / "mlflow"), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                  "--port", str(port)], base)
    try:
        with sync_playwright() as p:
            browser, page = browser_page(p, 1600, 1200)
            page.goto(f"{base}/#/compare-runs?runs=[{ids}]&experiments=[\"{exp.experiment_id}\"]",
                      timeout=300_000)
            page.get_by_text(next(iter(latest))).first.wait_for(timeout=300_000)
            time.sleep(8)
            page.screenshot(path=out, full_page=True)
            browser.close()
    finally:
        proc.terminate()
    print("compared:", ", ".join(latest))


def offline_page(html: str, out: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page = browser_page(p, 1400, 1000)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            "file://") else route.abort())
        page.goto(Path(html).resolve().as_uri())
        page.wait_for_selector(".vega-embed svg, .vega-embed canvas", timeout=120_000)
        time.sleep(3)
        page.screenshot(path=out, full_page=True)
        browser.close()


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    {"projector": projector, "mlflow-compare": mlflow_compare, "page": offline_page}[kind](*rest)

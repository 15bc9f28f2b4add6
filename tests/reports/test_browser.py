"""The report and the leaderboard in a real browser: headless Chromium driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe`` (DevTools messages as NUL-separated JSON on file
descriptors 3 and 4), so no WebSocket client or browser-automation package is needed. Each page is opened
from ``file://`` and must load with no console error, no request other than ``file:`` and ``data:``, every
image decoded (``naturalWidth > 0``), and a click on a column header must reorder the rows. Screenshots
are saved (in the test's temporary folder, and in ``$BENCHMARK_SCREENSHOTS`` when it is set).

Needs Debian's ``chromium`` (``apt-get install chromium``; CI installs it): skipped without it.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import example_copy, fgsm_pgd_tables, folder_config, write_image_folder

from benchmark.cli import main
from benchmark.reports import build_report

pytestmark = pytest.mark.slow

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, binary: str, profile: Path, width: int = 1400, height: int = 1000):
        r_cmd, w_cmd = os.pipe()
        r_out, w_out = os.pipe()
        # keep the child's ends clear of 3 and 4, which dup2 below makes them
        r_cmd, w_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (r_cmd, w_out))

        def child_fds():
            os.dup2(r_cmd, 3)
            os.dup2(w_out, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             f"--user-data-dir={profile}", "--disable-extensions", "--disable-background-networking",
             "--disable-sync", "--disable-component-update", "--no-default-browser-check",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=child_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (r_cmd, w_out):
            os.close(fd)
        self.w, self.r, self.buf, self.next_id, self.events = w_cmd, r_out, b"", 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)

    def call(self, method: str, params: dict | None = None, *, session: bool = False, timeout: float = 60) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            m = self._read(end)
            if m.get("id") == msg["id"]:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def _read(self, end: float) -> dict:
        while b"\0" not in self.buf:
            ready, _, _ = select.select([self.r], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def open(self, url: str, timeout: float = 60) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        end = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read(end))

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                        session=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                      session=True)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def problems(self) -> tuple[list[str], list[str]]:
        """Console errors and exceptions, and requests to anything but file: and data: URLs."""
        errors, requests = [], []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text", ""))
            elif m == "Network.requestWillBeSent":
                url = p["request"]["url"]
                if not url.startswith(("file:", "data:")):
                    requests.append(url)
        return errors, requests

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.w)
        os.close(self.r)


MATRIX = fgsm_pgd_tables(steps=2, quality=40)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """A small run (4 images, 2 attacks, 2 defenses), its report, and a leaderboard of it and a second run."""
    if CHROMIUM is None:
        pytest.skip("needs Chromium (Debian: apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("browser")
    root = write_image_folder(tmp / "images", 4)
    second = MATRIX.replace('name = "jpeg"\nquality = 40', 'name = "median"')
    for name, tables in (("one", MATRIX), ("two", second)):
        assert main(["run", str(folder_config(tmp, name, root, tables, mos=True)), "--no-progress"]) == 0
    site = tmp / "site"
    assert main(["leaderboard", str(tmp / "runs" / "one"), str(tmp / "runs" / "two"), "-o", str(site)]) == 0
    browser = DevTools(CHROMIUM, tmp / "profile")
    yield browser, {"report": tmp / "runs" / "one" / "report.html", "leaderboard": site / "index.html"}, tmp
    browser.close()


SORT_PROBE = """(() => {
  const th = [...document.querySelectorAll('th.sort')].find(h => h.textContent.trim().startsWith(%s));
  th.scrollIntoView({block: 'center'});
  const r = th.getBoundingClientRect();
  const table = th.closest('table');
  return {x: r.left + r.width / 2, y: r.top + r.height / 2, id: table.id, col: th.cellIndex};
})()"""
COLUMN = "[...document.getElementById(%s).tBodies[0].rows].map(r => r.cells[%d].dataset.v || r.cells[%d].textContent)"


def _check(browser: DevTools, page: Path, header: str, shots: Path, name: str, *, min_images: int) -> None:
    browser.open(page.as_uri())
    browser.js("document.querySelectorAll('details').forEach(d => d.open = true)")
    time.sleep(0.3)  # images inside opened <details> decode
    images = browser.js("[...document.images].map(i => [i.complete, i.naturalWidth])")
    assert len(images) >= min_images and all(done and w > 0 for done, w in images), images[:5]
    probe = browser.js(SORT_PROBE % json.dumps(header))
    before = browser.js(COLUMN % (json.dumps(probe["id"]), probe["col"], probe["col"]))
    orders = []
    for _ in range(2):  # ascending, then descending
        probe = browser.js(SORT_PROBE % json.dumps(header))
        browser.click(probe["x"], probe["y"])
        orders.append([float(v) for v in browser.js(COLUMN % (json.dumps(probe["id"]), probe["col"], probe["col"]))])
    assert orders[0] == sorted(orders[0]) and orders[1] == sorted(orders[1], reverse=True)
    original = [float(v) for v in before]
    assert len(set(original)) > 1 and (orders[0] != original or orders[1] != original)
    shots.mkdir(exist_ok=True)
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(shots / f"{name}.png")
    if os.environ.get("BENCHMARK_SCREENSHOTS"):
        out = Path(os.environ["BENCHMARK_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shots / f"{name}.png", out / f"{name}.png")
    errors, requests = browser.problems()
    assert errors == [] and requests == []
    assert (shots / f"{name}.png").stat().st_size > 10_000


def test_report_in_chromium(pages):
    browser, paths, tmp = pages
    # the strips: clean x, then identity (x', |x' − x|, zoom) and jpeg (x', D(x'), two differences, zoom)
    _check(browser, paths["report"], "robust gain", tmp / "screenshots", "report", min_images=1 + 3 + 5)


LINKS = """(() => [...document.querySelectorAll('a[href]')].map(a => {
  const h = a.getAttribute('href');
  return [h, h.startsWith('#') && document.getElementById(decodeURIComponent(h.slice(1))) !== null];
}))()"""
STRIPS = """(() => [...document.querySelectorAll('.strip img, .strip-clean img')].map(i =>
  [i.alt, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]))()"""


def test_quickstart_report_from_a_copy_in_another_folder(pages, tmp_path):
    """The quickstart's report copied on its own elsewhere: its links resolve, its strips show the attack at
    native size (lossless, a 4× zoom) and following a worst attack's link shows its images."""
    browser, _, _ = pages
    assert main(["run", str(example_copy(tmp_path) / "quickstart.toml"), "--output-dir", str(tmp_path / "runs"),
                 "--no-progress"]) == 0
    copy = tmp_path / "elsewhere" / "shared-report.html"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "runs" / "quickstart" / "report.html", copy)
    shutil.rmtree(tmp_path / "runs")                       # nothing of the run is left to point at
    assert copy.stat().st_size < 5_000_000
    browser.open(copy.as_uri())
    browser.js("document.querySelectorAll('details').forEach(d => d.open = true)")
    time.sleep(0.3)
    links = browser.js(LINKS)
    assert links and all(ok for _, ok in links), [h for h, ok in links if not ok][:5]
    imgs = browser.js(STRIPS)
    assert len(imgs) >= 1 + 3 + 4 * 5
    assert all(0 < w <= 256 and 0 < h <= 256 for alt, w, h, _ in imgs if not alt.startswith("zoom")), imgs[:6]
    zooms = [(w, h, shown) for alt, w, h, shown in imgs if alt.startswith("zoom")]
    assert zooms and all(h == 32 and shown == 4 * w for w, h, shown in zooms)   # native crops drawn 4× larger
    # the first ranked defense's worst attack links to its strip, which then is on screen
    target = browser.js("""(() => { const a = document.querySelector('table[id$="-rank0"] tbody tr:not(.ref) a');
        a.click(); return a.getAttribute('href'); })()""")
    time.sleep(0.3)
    top = browser.js(f"document.getElementById({json.dumps(target[1:])}).getBoundingClientRect().top")
    assert target.startswith("#strip-") and -2 <= top < 1000    # scrolled to it (sub-pixel rounding aside)
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(tmp_path / "quickstart.png")
    if os.environ.get("BENCHMARK_SCREENSHOTS"):
        shutil.copy(tmp_path / "quickstart.png", Path(os.environ["BENCHMARK_SCREENSHOTS"]) / "quickstart.png")
    errors, requests = browser.problems()
    assert errors == [] and requests == []


def test_split_report_from_a_copy_in_another_folder(pages, tmp_path, monkeypatch):
    """A run past the one-page size: its index and section pages, copied together elsewhere, load with every image
    decoded, no error and no request outside the copy; a section's link leads to its page."""
    import sys

    from benchmark.reports import html

    browser, _, _ = pages
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from report_timing import synthetic_run

    run = tmp_path / "study"
    synthetic_run(run, datasets=1, metrics=2, families=2, budgets=1, adaptive_families=1, defenses=4, images=6,
                  side=96)
    monkeypatch.setattr(html, "SINGLE_PAGE_CELLS", 4)
    build_report(run)
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    shutil.copy(run / "report.html", copy / "report.html")
    shutil.copytree(run / "report", copy / "report")
    shutil.rmtree(run)
    browser.open((copy / "report.html").as_uri())
    target = browser.js("document.querySelector('section a[href^=\"report/\"]').getAttribute('href')")
    for page in [copy / "report.html"] + sorted((copy / "report").glob("*.html")):
        browser.open(page.as_uri())
        browser.js("document.querySelectorAll('details').forEach(d => d.open = true)")
        time.sleep(0.3)
        images = browser.js("[...document.images].map(i => [i.complete, i.naturalWidth])")
        assert all(done and w > 0 for done, w in images) and (page.parent.name != "report" or len(images) >= 5)
        links = browser.js(LINKS)
        assert links and all(ok for h, ok in links if h.startswith("#"))
        errors, requests = browser.problems()
        assert errors == [] and requests == []
    assert (copy / target.split("#")[0]).is_file()


def test_leaderboard_in_chromium(pages):
    browser, paths, tmp = pages
    _check(browser, paths["leaderboard"], "worst g_D", tmp / "screenshots", "leaderboard", min_images=0)
    # the runs table: no cell overflows into the next one
    overlap = browser.js("""(() => { const rows = [...document.querySelectorAll('#runs tr')];
        return rows.some(r => [...r.cells].some(c => c.scrollWidth > c.clientWidth + 1)); })()""")
    assert overlap is False
    # a defense links to the cells behind its row, which open when followed
    browser.js("document.querySelectorAll('details').forEach(d => d.open = false)")
    opened = browser.js("""(() => { const a = document.querySelector('a[href^="#d-"]'); a.click();
        const target = document.getElementById(a.getAttribute('href').slice(1));
        return new Promise(r => setTimeout(() => r(target.open), 50)); })()""")
    assert opened is True

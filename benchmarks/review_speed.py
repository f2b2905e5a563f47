"""Review page speed: time from a key press to the next slice drawn with its contours.

Builds a review case from a patient folder (CT + reference RTSTRUCT), contours it with the
built-in model (`segment`: RS + QA file), starts `cervseg review` on a free local port and
measures two ways:

1. HTTP: the two requests a slice change makes (raw CT slice + contour polygons), one
   after the other on a keep-alive connection, for every slice in order; the first request
   of a case includes reading the CT and computing reference metrics.
2. Browser: real headless Chromium presses the down arrow through the slices; the page
   records keydown -> slice drawn (canvas painted, contours stroked) in window.cervsegTimings.
   The page prefetches the next slices, so this is what a reviewer feels.

    python benchmarks/review_speed.py --patient ../shared/data/pelvic-ref-002/dicom
    python benchmarks/review_speed.py --patient /tmp/phantoms/PH9100-001 --screenshot docs/review-page.png

--screenshot saves the page (worst-first order, reference shown) as a PNG for docs/review.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]


def summary(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"n={len(ms)} median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {max(ms):.1f} ms"


def build_case(patient: Path, case: Path) -> None:
    """case/input = the patient's files, case/RS_*.dcm + QA_*.csv = built-in model's contours."""
    from cervseg.infer.segment import segment_series

    shutil.copytree(patient, case / "input")
    t = time.perf_counter()
    segment_series(case / "input", case, threads=2)
    print(f"segment (built-in model, 2 threads): {time.perf_counter() - t:.1f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, db: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    process = subprocess.Popen([sys.executable, "-m", "cervseg", "-q", "review", "--cases", str(root), "--db", str(db),
                                "--port", str(port)], env=env)
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/static/style.css", timeout=2)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("review server did not start")


def http_timings(url: str, case: str) -> None:
    with httpx.Client(base_url=url, timeout=300) as client:
        t = time.perf_counter()
        meta = client.get(f"/api/cases/{case}").json()
        print(f"HTTP: opening the case (CT read, contours, reference metrics): {time.perf_counter() - t:.2f} s, "
              f"{meta['n_slices']} slices, {len(meta['contour_slices'])} with contours")
        times = []
        for z in range(meta["n_slices"]):
            t = time.perf_counter()
            image = client.get(f"/api/cases/{case}/slices/{z}/image").content
            contours = client.get(f"/api/cases/{case}/slices/{z}/contours").json()
            times.append(1000 * (time.perf_counter() - t))
            assert len(image) == 2 * meta["rows"] * meta["cols"] and contours["slice"] == z
        print(f"HTTP: image + contours per slice, first visit of each slice: first {times[0]:.1f} ms; {summary(times[1:])}")
        again = []
        for z in range(meta["n_slices"]):
            t = time.perf_counter()
            client.get(f"/api/cases/{case}/slices/{z}/image")
            client.get(f"/api/cases/{case}/slices/{z}/contours")
            again.append(1000 * (time.perf_counter() - t))
        print(f"HTTP: image + contours per slice, cached on the server: {summary(again)}")


def browser_timings(url: str, steps: int, screenshot: Path | None, profile: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 300)
    rendered = "return document.body.dataset.renderedSlice || null"
    try:
        driver.get(url)
        driver.find_element(By.ID, "reviewer-input").send_keys("benchmark")
        driver.find_element(By.ID, "start").click()
        wait.until(lambda d: d.execute_script(rendered))
        driver.execute_script("window.cervsegTimings.length = 0")
        for _ in range(steps):
            before = driver.execute_script(rendered)
            ActionChains(driver).send_keys(Keys.ARROW_DOWN).perform()
            wait.until(lambda d: d.execute_script(rendered) != before)
            time.sleep(0.25)  # a reviewer looks at the slice before moving on (prefetch runs meanwhile)
        times = driver.execute_script("return window.cervsegTimings.slice()")
        print(f"browser: key press -> slice drawn, arrow keys slice by slice: {summary(times)}")
        driver.execute_script("window.cervsegTimings.length = 0")
        for _ in range(steps):  # back up through the same slices, without pausing
            before = driver.execute_script(rendered)
            ActionChains(driver).send_keys(Keys.ARROW_UP).perform()
            wait.until(lambda d: d.execute_script(rendered) != before)
        times = driver.execute_script("return window.cervsegTimings.slice()")
        print(f"browser: key held down (next key as soon as the slice is drawn): {summary(times)}")
        driver.execute_script("window.cervsegTimings.length = 0")
        Select(driver.find_element(By.ID, "order")).select_by_value("worst")
        for _ in range(min(steps, 30)):  # worst-first: slices far apart, each one new to the page
            before = driver.execute_script(rendered)
            ActionChains(driver).send_keys(Keys.ARROW_DOWN).perform()
            wait.until(lambda d: d.execute_script(rendered) != before)
            time.sleep(0.25)
        times = driver.execute_script("return window.cervsegTimings.slice()")
        print(f"browser: key press -> slice drawn, worst-first order (QA): {summary(times)}")
        if screenshot is not None:
            Select(driver.find_element(By.ID, "order")).select_by_value("slice")
            Select(driver.find_element(By.ID, "order")).select_by_value("worst")  # jumps to the worst slice
            driver.find_element(By.ID, "show-reference").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#structures tr[data-structure]"))
            ActionChains(driver).send_keys("2").perform()
            time.sleep(1.0)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(screenshot))
            print(f"screenshot: {screenshot}")
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patient", type=Path, required=True, help="patient folder: CT series + reference RTSTRUCT")
    parser.add_argument("--steps", type=int, default=60, help="arrow-key presses in the browser")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="review-speed-") as tmp:
        root = Path(tmp) / "root"
        case = root / (args.patient.name if args.patient.name != "dicom" else args.patient.parent.name)
        build_case(args.patient.resolve(), case)
        port = free_port()
        server = start_server(root, Path(tmp) / "review.sqlite", port)
        try:
            url = f"http://127.0.0.1:{port}"
            http_timings(url, case.name)
            browser_timings(url + "/", args.steps, args.screenshot, Path(tmp) / "profile")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

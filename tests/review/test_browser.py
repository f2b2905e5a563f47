"""End to end in real headless Chromium: name, grade by click and key, reload, review-stats.

Uses Debian's chromium + chromedriver through Selenium with an explicit driver path, so
selenium-manager never downloads anything; skips with the reason when they are absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.review.store import ReviewStore
from tests.review.conftest import ReviewServer

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TOKEN = "browser-test-token"


def chromium_driver(profile: Path, width: int = 1400, height: int = 900):
    """Headless Chromium with no network side-channels and a fresh profile (skips when absent)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_for(driver, condition, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def rendered_slice(driver) -> str | None:
    return driver.execute_script("return document.body.dataset.renderedSlice || null")


def start(driver, url: str, reviewer: str) -> str:
    from selenium.webdriver.common.by import By

    driver.get(url)
    box = wait_for(driver, lambda d: d.find_element(By.ID, "reviewer-input"))
    box.clear()
    box.send_keys(reviewer)
    driver.find_element(By.ID, "start").click()
    return wait_for(driver, rendered_slice)


def selected_grades(driver) -> dict[str, int]:
    """Structure -> highlighted grade button, read in one script (the panel is rebuilt on every change)."""
    return driver.execute_script(
        "const out={};for(const tr of document.querySelectorAll('#structures tr[data-structure]')){"
        "const b=tr.querySelector('button.grade.selected');if(b)out[tr.dataset.structure]=Number(b.dataset.grade);}"
        "return out;")


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


@pytest.mark.slow
def test_grade_by_click_and_key_reload_and_review_stats(review_root, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root, _ = review_root
    db = tmp_path / "review.sqlite"
    driver = chromium_driver(tmp_path / "profile")
    server = ReviewServer(root, db, tmp_path / "server.log", token=TOKEN).start()
    try:
        opened = start(driver, f"{server.url}/?token={TOKEN}", "Dr Browser")
        while len(driver.find_elements(By.CSS_SELECTOR, "#structures tr[data-structure]")) < 2:
            previous = rendered_slice(driver)
            press(driver, Keys.ARROW_DOWN)
            wait_for(driver, lambda d: rendered_slice(d) == str(int(previous) + 1))
        first = rendered_slice(driver)
        rows = driver.find_elements(By.CSS_SELECTOR, "#structures tr[data-structure]")
        names = [r.get_attribute("data-structure") for r in rows]
        assert len(names) >= 2, "the first contoured slice shows at least two structures"
        # a click grades the first structure, key 3 the next (the highlight moved on)
        rows[0].find_element(By.CSS_SELECTOR, 'button[data-grade="2"]').click()
        wait_for(driver, lambda d: "saved" in d.find_element(By.ID, "status").text)
        press(driver, "3")
        wait_for(driver, lambda d: selected_grades(d) == {names[0]: 2, names[1]: 3})
        # window presets and the picture itself
        driver.find_element(By.ID, "preset-bone").click()
        assert driver.find_element(By.ID, "wl").text == "W 1500 / L 300"
        lit = driver.execute_script(
            "const c=document.getElementById('canvas');const d=c.getContext('2d').getImageData(0,0,c.width,c.height).data;"
            "let n=0;for(let i=0;i<d.length;i+=4){if(d[i]>40)n++;}return n;")
        assert lit > 1000, "the CT slice is drawn"
        # arrow key: next slice, graded by key 1
        press(driver, Keys.ARROW_DOWN)
        wait_for(driver, lambda d: rendered_slice(d) == str(int(first) + 1))
        second_names = [r.get_attribute("data-structure")
                        for r in driver.find_elements(By.CSS_SELECTOR, "#structures tr[data-structure]")]
        press(driver, "1")
        wait_for(driver, lambda d: selected_grades(d).get(second_names[0]) == 1)
        # comment
        driver.find_element(By.ID, "comment").send_keys("bladder wall: check")
        driver.find_element(By.ID, "canvas").click()
        wait_for(driver, lambda d: "comment saved" in d.find_element(By.ID, "status").text)
        # reload: the grades come back from the server
        driver.refresh()
        assert start(driver, f"{server.url}/", "Dr Browser") == opened  # the cookie carries the token now
        for z in range(int(opened) + 1, int(first) + 1):
            press(driver, Keys.ARROW_DOWN)
            wait_for(driver, lambda d: rendered_slice(d) == str(z))
        wait_for(driver, lambda d: selected_grades(d) == {names[0]: 2, names[1]: 3})
        press(driver, Keys.ARROW_DOWN)
        wait_for(driver, lambda d: rendered_slice(d) == str(int(first) + 1) and selected_grades(d) == {second_names[0]: 1})
        assert driver.find_element(By.ID, "comment").get_attribute("value") == "bladder wall: check"
        progress = driver.find_element(By.CSS_SELECTOR, '#case-list li[data-case-id="CASE01"] .progress').text
        assert progress.startswith("3/")
    finally:
        driver.quit()
        server.stop()
    stored = {(g.slice_index, g.structure): g.grade for g in ReviewStore(db).current_grades(reviewer="Dr Browser")}
    assert stored == {(int(first), names[0]): 2, (int(first), names[1]): 3, (int(first) + 1, second_names[0]): 1}
    assert all(g.seconds_on_slice is not None and g.seconds_on_slice >= 0 for g in ReviewStore(db).all_grades())
    out = tmp_path / "stats"
    result = CliRunner().invoke(app, ["review-stats", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "table2_long.csv", newline="", encoding="utf-8") as fh:
        long = {(r["structure"], r["grade"]): int(r["count"]) for r in csv.DictReader(fh) if r["count"]}
    expected = {}
    for (z, name), grade in stored.items():
        label = ["Acceptable", "Minor revision", "Major revision", "Not acceptable"][grade - 1]
        expected[(name, label)] = expected.get((name, label), 0) + 1
    assert {k: v for k, v in long.items() if v} == expected
    assert (out / "grade_vs_metrics.csv").read_text().count("\n") == 1 + len(stored)

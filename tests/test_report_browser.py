"""The report in a real browser: headless Chromium (Debian's chromium + chromedriver, which `make test` installs)."""

import json
import os
import shutil
from pathlib import Path

from conftest import AL_CSV

FAST = ["--draws", "200", "--tune", "300", "--chains", "2", "--geometry", "shape", "--quiet", "--jobs", "1"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: Set to a file path to keep the browser's screenshot of the report (to look at it by eye).
SCREENSHOT = os.environ.get("PALM_BAYES_SCREENSHOT")


def test_report_opens_in_headless_chromium_without_network(cli, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(DRIVER).exists(), \
        "needs Debian's chromium and chromium-driver: `make browser` (or apt-get install chromium chromium-driver)"
    code, _, err = cli("report", AL_CSV, "--method", "random", "entropy", "--max-points", "6", "--target", "0.75",
                       "--out", tmp_path / "rep", *FAST)
    assert code == 0, err
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get((tmp_path / "rep" / "report.html").as_uri())
        state = driver.execute_script(
            "const imgs = [...document.images];"
            "return {n: imgs.length, loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,"
            " sections: [...document.querySelectorAll('section')].map(s => s.id),"
            " tables: document.querySelectorAll('table').length,"
            " page: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth,"
            " boxes: [...document.querySelectorAll('table')].map(t => t.parentElement.getBoundingClientRect().right)};")
        assert state["n"] == 5 and state["loaded"] == 5, state  # no broken image
        assert state["sections"] == ["data", "curves", "comparison", "diagnostics", "decision"]
        assert state["tables"] >= 5
        # no table runs off the page: the page does not scroll sideways, and every table's box ends inside it
        assert state["scroll"] <= state["page"], state
        assert len(state["boxes"]) == state["tables"] and max(state["boxes"]) <= state["page"], state
        requests = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                requests.append(msg["params"]["request"]["url"])
        # the report and its embedded images only; the browser's own chrome:// pages (its start page) are not network
        page = (tmp_path / "rep" / "report.html").as_uri()
        assert page in requests
        network = [u for u in requests if not u.startswith(("file://", "data:", "chrome://", "chrome-untrusted://",
                                                               "about:"))]
        assert not network, network
        if SCREENSHOT:
            driver.save_screenshot(SCREENSHOT)
    finally:
        driver.quit()

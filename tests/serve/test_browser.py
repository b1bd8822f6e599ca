"""End to end in headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven by Selenium; nothing is
downloaded): the page searches, plays a result, finds more like it, draws a timeline, uploads a clip, and reports
errors. The service runs with uvicorn on 127.0.0.1 (an ephemeral port)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.audio_fixtures import wav_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def base_url(app) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[webdriver.Chrome]:
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "the browser test needs Debian's chromium and chromium-driver: run `bash scripts/setup.sh` as root "
        "(or `apt-get install -y chromium chromium-driver`)"
    )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
        "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def wait_for(driver, condition, message: str):
    return WebDriverWait(driver, WAIT_SECONDS).until(lambda d: condition(d), message)


def status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def results(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#results > li.result")


def search(driver, text: str) -> None:
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text + "\n")
    wait_for(driver, lambda d: f"for “{text}”" in status(d) and "result" in status(d), f"no results for {text!r}")


def test_search_play_more_like_this_and_timeline(browser, base_url):
    browser.get(base_url + "/")
    wait_for(browser, lambda d: "7 sounds" in d.find_element(By.ID, "library").text, "the library line")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=q]").text == "Describe a sound"
    assert browser.find_element(By.ID, "status").get_attribute("aria-live") == "polite"

    search(browser, "a dog barking")
    found = results(browser)
    assert len(found) == 7 and status(browser).startswith("7 results")
    scores = [float(r.find_element(By.CLASS_NAME, "score-value").text) for r in found]
    assert scores == sorted(scores, reverse=True)
    assert "dog+barking" in browser.current_url or "dog%20barking" in browser.current_url

    audio = found[0].find_element(By.TAG_NAME, "audio")
    browser.execute_script("arguments[0].play()", audio)
    wait_for(
        browser,
        lambda d: d.execute_script("return arguments[0].readyState >= 2 && arguments[0].duration > 0", audio),
        "the audio element never loaded",
    )
    duration = browser.execute_script("return arguments[0].duration", audio)
    assert duration > 0.3
    wait_for(browser, lambda d: d.execute_script("return arguments[0].currentTime > 0", audio), "playback stalled")
    browser.execute_script("arguments[0].pause()", audio)

    name = found[0].find_element(By.CLASS_NAME, "name").text
    found[0].find_element(By.CLASS_NAME, "more").click()
    wait_for(browser, lambda d: f"like {name}" in status(d), "more like this")
    names = [r.find_element(By.CLASS_NAME, "name").text for r in results(browser)]
    assert len(names) == 6 and name not in names
    assert browser.switch_to.active_element.get_attribute("id") == "results-heading"

    search(browser, "a loud beep")
    long = next(r for r in results(browser) if r.find_element(By.CLASS_NAME, "name").text == "recording.wav")
    where = long.find_element(By.CLASS_NAME, "where")
    assert where.is_displayed() and "a loud beep" in where.text
    where.click()
    caption = long.find_element(By.CLASS_NAME, "timeline-caption")
    wait_for(browser, lambda d: "windows" in caption.text, "the timeline")
    points = long.find_element(By.CSS_SELECTOR, ".curve polyline").get_attribute("points").split()
    assert len(points) == 4  # 4 windows of 10 s over 25 s
    for button in long.find_elements(By.CSS_SELECTOR, ".ranges button.range"):
        assert button.get_attribute("aria-label").startswith("Play ")
    best = long.find_element(By.CSS_SELECTOR, ".ranges button.best")
    start = float(best.get_attribute("data-start"))
    assert "best match" in best.get_attribute("aria-label")
    best.click()  # plays the file from the best window's start
    player = long.find_element(By.TAG_NAME, "audio")
    wait_for(browser, lambda d: d.execute_script("return arguments[0].currentTime", player) >= start, "seek to best")
    browser.execute_script("arguments[0].pause()", player)

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_upload_a_clip_for_similar_sounds_and_tags(browser, base_url, tmp_path):
    clip = tmp_path / "my-clip.wav"
    clip.write_bytes(wav_bytes(1.0, seed=2))
    browser.get(base_url + "/")
    wait_for(browser, lambda d: "sounds" in d.find_element(By.ID, "library").text, "page ready")
    browser.find_element(By.ID, "clip").send_keys(str(clip))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait_for(browser, lambda d: "like your clip my-clip.wav" in status(d), "upload results")
    assert len(results(browser)) == 7
    section = browser.find_element(By.ID, "tags-section")
    assert section.is_displayed() and "my-clip.wav" in section.text
    tags = browser.find_elements(By.CSS_SELECTOR, "#tags li")
    assert 1 <= len(tags) <= 8 and all("%" in t.text for t in tags)


def test_errors_are_reported_in_the_page(browser, base_url, tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("not a sound at all")
    browser.get(base_url + "/")
    wait_for(browser, lambda d: "sounds" in d.find_element(By.ID, "library").text, "page ready")
    browser.find_element(By.ID, "clip").send_keys(str(fake))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button[type=submit]").click()
    wait_for(browser, lambda d: "Upload failed" in status(d), "the upload error")
    assert "not an audio file" in status(browser)
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")


def test_keyboard_only_search(browser, base_url):
    from selenium.webdriver.common.action_chains import ActionChains

    browser.get(base_url + "/?q=rain")
    wait_for(browser, lambda d: len(results(d)) == 7, "a search from the address")
    browser.execute_script("document.activeElement.blur()")
    ActionChains(browser).send_keys("/").perform()
    assert browser.switch_to.active_element.get_attribute("id") == "q"
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys("thunder\n").perform()
    wait_for(browser, lambda d: "for “thunder”" in status(d), "search by keyboard")
    first = results(browser)[0].find_element(By.CLASS_NAME, "more")
    first.send_keys(Keys.ENTER)  # a native button: Enter activates it
    wait_for(browser, lambda d: "like" in status(d), "more like this by keyboard")

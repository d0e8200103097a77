"""The dashboard (/ui/) in a real headless chromium driven by Selenium, against the real service.

The browser has no network but the service (a proxy on a dead port, bypassed for the
service only): a CDN reference would fail. Needs chromium and chromium-driver
(``apt-get install chromium chromium-driver``); skipped without them unless
``OCTOBANDIT_REQUIRE_SERVICES=1``. With ``OCTOBANDIT_SCREENSHOTS=1`` the screenshots are
written to docs/img/ (the committed ones come from such a run), else to the test's
temporary directory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
)
REQUIRED = os.environ.get("OCTOBANDIT_REQUIRE_SERVICES") == "1"  # CI installs both
try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the test extra installs selenium
    webdriver = None  # type: ignore[assignment]

MISSING = (
    "needs selenium (pip install -e '.[test]')"
    if webdriver is None
    else "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
    if CHROMIUM is None or CHROMEDRIVER is None
    else None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None and not REQUIRED, reason=str(MISSING)),
]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
ARMS = {"control": 0.040, "green-button": 0.055, "big-banner": 0.070}  # true conversion rates


@pytest.fixture
def service(server_factory: Any, tmp_path: Path) -> Any:
    return server_factory(tmp_path / "ui.db").start()


@pytest.fixture
def browser(service: Any, tmp_path: Path) -> Iterator[Any]:
    assert MISSING is None, MISSING
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-dev-shm-usage", "--window-size=1366,768", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        # no network but the service: a CDN reference would fail to load
        "--proxy-server=http://127.0.0.1:9", f"--proxy-bypass-list=127.0.0.1:{service.port}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    driver.set_window_size(1366, 768)
    try:
        yield driver
    finally:
        driver.quit()


def _shots(tmp_path: Path) -> Path:
    if os.environ.get("OCTOBANDIT_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path


def _simulate(url: str, experiment: str, rounds: int, per_round: int, seed: int) -> int:
    """``rounds`` batches of decisions, each rewarded 1 with its arm's rate (else 0)."""
    rng = np.random.default_rng(seed)
    made = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(rounds):
            got = http.post(f"/v1/experiments/{experiment}/decisions", json={"n": per_round})
            assert got.status_code == 200, got.text
            decisions = got.json()["decisions"]
            rewards = [
                {"decision_id": d["decision_id"], "reward": float(rng.random() < ARMS[d["arm_id"]])}
                for d in decisions
            ]
            sent = http.post(f"/v1/experiments/{experiment}/rewards", json={"rewards": rewards})
            assert sent.status_code == 200 and sent.json()["accepted"] == len(rewards), sent.text
            made += len(decisions)
    return made


def _wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 20) -> Any:
    # the page re-renders its view on each refresh: an element found may go stale at once
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


def _text(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def _renders(driver: Any) -> int:
    return int(driver.find_element(By.ID, "view").get_attribute("data-renders") or 0)


def _severe(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_dashboard_shows_live_data_and_its_controls_work(
    service: Any, browser: Any, tmp_path: Path
) -> None:
    http = httpx.Client(base_url=service.url, timeout=30)
    created = http.post(
        "/v1/experiments",
        json={
            "id": "signup-button",
            "name": "Sign-up button",
            "policy": {"type": "thompson"},
            "arms": [{"id": a} for a in ARMS],
            "snapshot_interval": 1,
        },
    )
    assert created.status_code == 201, created.text
    # a second experiment whose statistics make the stopping rule hold (admin fixtures)
    # (the rule is checked at the experiment's snapshots: one a second here, 300 s by default)
    checkout = {"id": "checkout", "arms": [{"id": "a"}, {"id": "b"}], "snapshot_interval": 1}
    assert http.post("/v1/experiments", json=checkout).status_code == 201
    for arm, successes in (("a", 150), ("b", 300)):
        put = http.put(
            f"/v1/experiments/checkout/arms/{arm}/stats",
            json={"decisions": 3000, "rewards": 3000, "reward_sum": successes},
        )
        assert put.status_code == 200, put.text

    # several snapshots (one a second) over a few thousand decisions
    made = 0
    for i in range(8):
        made += _simulate(service.url, "signup-button", rounds=2, per_round=200, seed=i)
        if i < 7:
            time.sleep(1.05)  # snapshot_interval is 1 s: a snapshot between the batches

    # -- the list ---------------------------------------------------------------------
    browser.get(service.url + "/ui")  # redirected to /ui/
    assert browser.current_url.endswith("/ui/")
    _wait(browser, lambda d: d.find_elements(By.ID, "open-signup-button"))
    row = browser.find_element(By.ID, "open-signup-button").find_element(By.XPATH, "../..")
    cell = row.find_element(By.CSS_SELECTOR, "[data-field=decisions]")
    assert cell.text.replace(",", "") == str(made)
    assert "running" in row.text and "3 / 3" in row.text
    browser.save_screenshot(str(_shots(tmp_path) / "dashboard-list.png"))

    # -- one experiment: numbers, charts and their text alternatives -------------------
    browser.find_element(By.ID, "open-signup-button").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "total-decisions"))
    _wait(browser, lambda d: d.find_elements(By.ID, "reward-table"))
    assert _text(browser, "total-decisions").replace(",", "") == str(made)
    stats = http.get("/v1/experiments/signup-button/stats").json()
    assert _text(browser, "exp-status") == "running"
    for chart in ("allocation-chart", "intervals-chart", "probbest-chart", "reward-chart"):
        svg = browser.find_element(By.CSS_SELECTOR, f"svg[aria-labelledby^='{chart}']")
        assert svg.get_attribute("role") == "img"
        assert browser.find_element(By.ID, f"{chart}-t").get_attribute("textContent")
    for table in ("allocation", "intervals", "probbest", "reward"):
        rows = browser.find_elements(By.CSS_SELECTOR, f"#{table}-table tbody tr")
        assert rows, f"no text alternative for the {table} chart"
    history = http.get("/v1/experiments/signup-button/history").json()
    assert len(history["at"]) >= 3  # several snapshots, so the charts have a course
    # the interval table says what the API says
    conclusion = http.get("/v1/experiments/signup-button/conclusion").json()
    cells = browser.find_elements(By.CSS_SELECTOR, "#intervals-table tbody tr")
    assert [c.find_element(By.TAG_NAME, "th").get_attribute("textContent") for c in cells] == [
        a["arm_id"] for a in conclusion["arms"]
    ]
    # the cumulative reward read from the event log ends at the total the stats give
    last = browser.find_elements(By.CSS_SELECTOR, "#reward-table tbody tr")[-1]
    assert float(last.find_element(By.TAG_NAME, "td").get_attribute("textContent")) == (
        pytest.approx(stats["total_reward"])
    )
    browser.save_screenshot(str(_shots(tmp_path) / "dashboard-experiment.png"))
    browser.execute_script("document.getElementById('allocation').scrollIntoView()")
    browser.save_screenshot(str(_shots(tmp_path) / "dashboard-charts.png"))
    browser.execute_script("window.scrollTo(0, 0)")

    # -- live data: new rewards show after a refresh -------------------------------------
    made += _simulate(service.url, "signup-button", rounds=1, per_round=100, seed=99)
    browser.find_element(By.ID, "refresh-now").click()
    _wait(browser, lambda d: _text(d, "total-decisions").replace(",", "") == str(made))

    # -- an opened data table stays open across refreshes
    browser.find_element(By.ID, "probbest-summary").click()
    assert browser.find_element(By.ID, "probbest-details").get_attribute("open") is not None
    renders = _renders(browser)
    browser.find_element(By.ID, "refresh-now").click()
    _wait(browser, lambda d: _renders(d) > renders)  # the view was drawn again
    assert browser.find_element(By.ID, "probbest-details").get_attribute("open") is not None
    browser.find_element(By.ID, "probbest-summary").click()

    # -- keyboard: Tab reaches the controls, focus is visible, Enter presses -------------
    browser.find_element(By.ID, "refresh-toggle").click()  # auto-refresh off: a still page
    assert browser.find_element(By.ID, "refresh-toggle").get_attribute("aria-pressed") == "false"
    browser.execute_script("window.scrollTo(0, 0); document.querySelector('.skip').focus()")
    reached: list[str] = []
    for _ in range(40):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        focused = browser.switch_to.active_element
        reached.append(str(focused.get_attribute("id")))
        if reached[-1] == "pause-toggle":
            break
    assert reached[-1] == "pause-toggle", reached
    assert reached.index("api-key") < reached.index("refresh-now") < reached.index("pause-toggle")
    assert focused.tag_name == "button"
    outline = browser.execute_script(
        "const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]"
    )
    assert outline[0] != "none" and outline[1] != "0px", outline
    focused.send_keys(Keys.ENTER)
    _wait(browser, lambda _: _status(http, "signup-button") == "paused")
    _wait(browser, lambda d: _text(d, "exp-status") == "paused")
    assert "Paused signup-button" in _text(browser, "status-message")

    # -- disable an arm -----------------------------------------------------------------
    browser.find_element(By.ID, "arm-toggle-control").click()
    _wait(browser, lambda _: _arm(http, "signup-button", "control")["enabled"] is False)
    _wait(browser, lambda d: _text(d, "arm-state-control") == "disabled")
    button = browser.find_element(By.ID, "arm-toggle-control")
    assert button.get_attribute("aria-label") == "Enable arm control"
    browser.find_element(By.ID, "pause-toggle").click()  # resume
    _wait(browser, lambda _: _status(http, "signup-button") == "running")

    # -- conclude now: the service records the leader (b) as the winner at once
    browser.get(service.url + "/ui/#/experiments/checkout")  # (a hash change: no reload)
    _wait(browser, lambda d: "checkout" in _text(d, "exp-title"))
    assert "Stopping rule met" in _text(browser, "conclusion")
    browser.find_element(By.ID, "conclude-toggle").click()
    _wait(browser, lambda _: _status(http, "checkout") == "concluded")
    recorded = http.get("/v1/experiments/checkout").json()["conclusion"]
    assert recorded["winner"] == "b"
    browser.find_element(By.ID, "refresh-now").click()
    _wait(browser, lambda d: _text(d, "exp-status") == "concluded")
    assert "Concluded: b wins" in _text(browser, "conclusion")

    assert _severe(browser) == []  # no console errors on any page
    http.close()


def _status(http: httpx.Client, experiment: str) -> str:
    return str(http.get(f"/v1/experiments/{experiment}").json()["status"])


def _arm(http: httpx.Client, experiment: str, arm: str) -> dict[str, Any]:
    arms = http.get(f"/v1/experiments/{experiment}").json()["arms"]
    return next(a for a in arms if a["id"] == arm)


def test_errors_are_shown_and_the_key_stays_in_the_tab(service: Any, browser: Any) -> None:
    """An error answer is shown with its status and code; the key is kept in sessionStorage
    only (the field is cleared) and can be forgotten."""
    browser.get(service.url + "/ui/#/experiments/no-such-thing")
    _wait(browser, lambda d: d.find_element(By.ID, "error-message").is_displayed())
    assert "404 experiment_not_found" in _text(browser, "error-message")
    # the messages of a refused key (the auth layer answers 401 or 403, nothing is written)
    messages = browser.execute_script(
        "return [explain(new ApiError(401, 'unauthorized', 'no key')),"
        " explain(new ApiError(403, 'forbidden', 'needs admin'))]"
    )
    assert messages[0].startswith("401: this service needs an API key"), messages
    assert messages[1].startswith("403: your API key may not do this"), messages
    browser.find_element(By.ID, "api-key").send_keys("ob_test_key", Keys.ENTER)
    _wait(browser, lambda d: "key set" in _text(d, "key-state"))
    stored = browser.execute_script("return sessionStorage.getItem('octobandit.apiKey')")
    assert stored == "ob_test_key"
    assert browser.find_element(By.ID, "api-key").get_attribute("value") == ""  # not left shown
    browser.find_element(By.ID, "key-forget").click()
    assert browser.execute_script("return sessionStorage.getItem('octobandit.apiKey')") is None


def test_an_empty_and_a_continuous_experiment_render_without_errors(
    service: Any, browser: Any
) -> None:
    """The charts' edge cases: no decision at all; continuous rewards (negative too)."""
    with httpx.Client(base_url=service.url, timeout=30) as http:
        for body in (
            {"id": "empty", "arms": [{"id": "a"}, {"id": "b"}]},
            {"id": "revenue", "reward": {"type": "continuous"}, "arms": [{"id": "x"}, {"id": "y"}]},
        ):
            assert http.post("/v1/experiments", json=body).status_code == 201
        decisions = http.post("/v1/experiments/revenue/decisions", json={"n": 40}).json()
        rng = np.random.default_rng(7)
        rewards = [
            {"decision_id": d["decision_id"], "reward": float(rng.normal(-2.0, 5.0))}
            for d in decisions["decisions"]
        ]
        assert http.post("/v1/experiments/revenue/rewards", json={"rewards": rewards}).is_success
        total = http.get("/v1/experiments/revenue/stats").json()["total_reward"]

    browser.get(service.url + "/ui/#/experiments/empty")
    _wait(browser, lambda d: "empty" in _text(d, "exp-title"))
    assert _text(browser, "total-decisions") == "0"
    assert "No decisions yet." in _text(browser, "allocation")
    assert "No rewards yet." in _text(browser, "reward")
    browser.get(service.url + "/ui/#/experiments/revenue")
    _wait(browser, lambda d: "revenue" in _text(d, "exp-title"))
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#reward-table tbody tr"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#intervals-table tbody tr")) == 2
    last = browser.find_elements(By.CSS_SELECTOR, "#reward-table tbody tr")[-1]
    shown = float(last.find_element(By.TAG_NAME, "td").get_attribute("textContent"))
    assert shown == pytest.approx(total, rel=1e-5)  # shown with 6 significant digits
    assert _severe(browser) == []

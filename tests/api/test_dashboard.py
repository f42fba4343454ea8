"""The dashboard: GET / in a real browser against a real operator and the simulator.

Headless Chromium (Debian's `chromium` and `chromium-driver`), driven by Selenium (a test-only
dependency) through Debian's driver: nothing is downloaded. One browser serves the module; each
test starts its own operator and opens the page afresh. Without the browser the browser tests
skip with the reason, except in CI (CI=true, or VM_OPERATOR_REQUIRE_BROWSER=1 as scripts/test.sh
sets it after installing the browser), where a missing browser is a failure. The HTTP-level tests (headers, routes) need no browser.

Chromium is started with its background services off, so the only traffic is to the operator on
loopback. The first test saves a screenshot to docs/dashboard.png (README "Dashboard").
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LOCAL_VMS, OCI_NAME, REPO_ROOT, Operator
from support import wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = REPO_ROOT / "docs" / "dashboard.png"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
TOKEN = "dashboard-full-token-0123456789abcdef"
READ_TOKEN = "dashboard-read-token-0123456789abcdef"
UBUNTU = "ubuntu-runner"
SEQUOIA, SONOMA = "macos-sequoia-base", "macos-sonoma-xcode"
# Names the rules allow (printable ASCII, no '/'), written to be run if inserted as HTML.
HOSTILE_NAMES = ("<img_src=x_onerror=alert(1)>", "\"><b>bold<b><!--", "'&amp;<i>x")
UNCACHED_IMAGE = "ghcr.io/cirruslabs/ubuntu:latest"  # in the simulator's registry, not cached
WAIT = 20.0

ASSETS = (("/", "text/html; charset=utf-8"), ("/ui/app.js", "text/javascript; charset=utf-8"),
          ("/ui/api.js", "text/javascript; charset=utf-8"),
          ("/ui/stream.js", "text/javascript; charset=utf-8"),
          ("/ui/dom.js", "text/javascript; charset=utf-8"),
          ("/ui/timeline.js", "text/javascript; charset=utf-8"),
          ("/ui/style.css", "text/css; charset=utf-8"))


# --- HTTP: what the operator serves -----------------------------------------------------------


def test_page_and_assets_are_served_with_a_strict_policy(operator: Operator) -> None:
    for path, content_type in ASSETS:
        status, headers, body = operator.request("GET", path)
        assert status == 200, (path, body[:200])
        assert headers["Content-Type"] == content_type, path
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Cache-Control"] == "no-store", path
        assert body, path
        head_status, head_headers, head_body = operator.request("HEAD", path)
        assert (head_status, head_body) == (200, b"")
        assert head_headers["Content-Length"] == str(len(body))
    page = operator.request("GET", "/")[2].decode()
    # no inline script or style: every script and style sheet is a file of its own
    assert "<script" in page and not re.search(r"<script(?![^>]*\ssrc=)", page)
    assert "<style" not in page and " style=" not in page
    status, _, _ = operator.request("GET", "/ui/nope.js")
    assert status == 404


def test_the_page_is_public_and_the_api_still_needs_the_token(operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN})
    assert op.request("GET", "/")[0] == 200
    assert op.request("GET", "/ui/app.js")[0] == 200
    assert op.request("GET", "/vms")[0] == 401
    assert op.request("GET", "/vms", {"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_the_page_is_in_the_openapi_document_as_html(operator: Operator) -> None:
    status, doc = operator.json("GET", "/openapi.json")
    assert status == 200
    page = doc["paths"]["/"]["get"]
    assert page["security"] == [{}]
    assert "text/html" in page["responses"]["200"]["content"]
    assert "text/javascript" in doc["paths"]["/ui/app.js"]["get"]["responses"]["200"]["content"]


# --- the browser ----------------------------------------------------------------------------


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI") == "true" or os.environ.get("VM_OPERATOR_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser tier cannot run in CI: {missing}")
        pytest.skip(f"browser tier skipped: {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--no-proxy-server", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-default-apps", "--no-first-run",
                 "--disable-domain-reliability", "--no-pings", "--dns-prefetch-disable",
                 "--disable-features=Translate,OptimizationHints,MediaRouter",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The dashboard of one operator in the module's browser."""

    def __init__(self, driver: Any, operator: Operator) -> None:
        from selenium.webdriver.common.by import By

        self.driver = driver
        self.operator = operator
        self.by = By
        driver.set_window_size(1400, 1000)
        driver.get(operator.url + "/")  # a new origin (port): an empty sessionStorage
        driver.get_log("browser")  # drop what an earlier page logged

    def find(self, css: str) -> Any:
        return self.driver.find_element(self.by.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(self.by.CSS_SELECTOR, css))

    def script(self, code: str, *args: Any) -> Any:
        return self.driver.execute_script(code, *args)

    def row(self, name: str) -> Any | None:
        return self.script("return [...document.querySelectorAll('#vm-rows tr')]"
                           ".find((row) => row.dataset.vm === arguments[0]) || null;", name)

    def wait_row(self, name: str) -> Any:
        return wait_for(lambda: self.row(name), WAIT, message=f"a row for {name!r}")

    def cell(self, name: str, column: str) -> str:
        """The text of a cell of a VM's row ("" without such a row), read in one step."""
        found = self.script("const row = [...document.querySelectorAll('#vm-rows tr')]"
                            ".find((r) => r.dataset.vm === arguments[0]);"
                            "return row ? row.querySelector(arguments[1]).innerText : '';",
                            name, f".col-{column}" if column != "state" else ".state")
        return str(found).strip()

    def state(self, name: str) -> str:
        return self.cell(name, "state")

    def button(self, name: str, action: str) -> Any:
        return self.wait_row(name).find_element(self.by.CSS_SELECTOR, f".act-{action}")

    def wait_state(self, name: str, state: str) -> None:
        wait_for(lambda: self.state(name) == state, WAIT,
                 message=lambda: f"{name} says {state} (it says {self.state(name)!r}; the page "
                                 f"tells {self.told()!r})")

    def told(self) -> str:
        """What the page tells the user beside the table: its notices and a refused create."""
        return str(self.script(
            "return [...document.querySelectorAll('#banner, #notice, #create-refusal, #create-label')]"
            ".map((e) => `${e.id}: ${e.innerText}`).join(' | ');"))

    def visible(self, css: str) -> bool:
        found = self.all(css)
        return bool(found) and bool(found[0].is_displayed())

    def severe_logs(self, allowed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The console's errors (and failed loads), less those matching ``allowed``."""
        return [entry for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"
                and not any(re.search(pattern, entry["message"]) for pattern in allowed)]


@pytest.fixture
def page(browser: Any, operator: Operator) -> Page:
    shown = Page(browser, operator)
    for name in LOCAL_VMS:
        shown.wait_row(name)
    return shown


def start_via_api(operator: Operator, name: str, **query: str) -> None:
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    status, body = operator.json("POST", f"/vms/{name}/start{suffix}")
    assert status in (200, 202), body


def wait_operation(operator: Operator, location: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        op: dict[str, Any] = operator.json("GET", location)[1]
        return op if op["state"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_for(finished, WAIT, message=f"{location} ends")
    return result


# --- the tests ------------------------------------------------------------------------------


def test_the_page_lists_the_vms_with_images_apart(page: Page) -> None:
    op = page.operator
    start_via_api(op, SEQUOIA)
    page.wait_state(SEQUOIA, "running")  # without a reload: the page follows the operator
    for name in LOCAL_VMS:
        assert page.cell(name, "name") == name
    wait_for(lambda: page.cell(SEQUOIA, "os") == "darwin", WAIT, message="the detail's OS")
    wait_for(lambda: page.cell(UBUNTU, "os") == "linux", WAIT, message="the detail's OS")
    detail = op.json("GET", f"/vms/{SEQUOIA}")[1]
    assert page.cell(SEQUOIA, "cpu") == str(detail["cpu"])
    assert page.cell(SEQUOIA, "disk") == f"{detail['disk_gb']} GB"
    assert "state-running" in page.row(SEQUOIA).find_element(page.by.CSS_SELECTOR,
                                                             ".state").get_attribute("class")
    # the OCI image is not a VM row: it is in the image cache of the host panel
    assert page.row(OCI_NAME) is None
    wait_for(lambda: OCI_NAME in page.find("#image-rows").text, WAIT, message="the image cache")
    host = op.json("GET", "/host")[1]
    wait_for(lambda: host["tart"]["version"] in page.find("#host-fields").text, WAIT,
             message="the host panel")
    guests = f"{host['macos_guests']['running']} of {host['macos_guests']['limit']}"
    assert guests == "1 of 2"
    wait_for(lambda: guests in page.find("#host-fields").text, WAIT,
             message="macOS guests running, out of the limit")
    assert page.find("#live").text == "live"  # reading GET /events
    assert page.severe_logs() == []
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.driver.save_screenshot(str(SCREENSHOT))


def test_start_makes_the_row_say_running_without_a_reload(page: Page) -> None:
    marker = page.script("window.sameDocument = 'yes'; return window.sameDocument;")
    assert page.state(UBUNTU) == "stopped"
    assert page.button(UBUNTU, "stop").get_attribute("disabled") is not None
    page.button(UBUNTU, "start").click()
    page.wait_state(UBUNTU, "running")
    assert page.script("return window.sameDocument;") == marker  # no reload happened
    assert page.operator.json("GET", f"/vms/{UBUNTU}")[1]["state"] == "running"
    wait_for(lambda: page.button(UBUNTU, "stop").get_attribute("disabled") is None, WAIT,
             message="Stop enabled")
    assert page.button(UBUNTU, "start").get_attribute("disabled") is not None
    # started without "suspendable": suspend cannot apply
    assert page.button(UBUNTU, "suspend").get_attribute("disabled") is not None
    # the timeline of the last hour shows the running stretch
    wait_for(lambda: page.row(UBUNTU).find_elements(page.by.CSS_SELECTOR, "rect.tl-running"),
             WAIT, message="a running stretch in the timeline")
    # readiness and the desired state, as the detail gives them
    wait_for(lambda: page.cell(UBUNTU, "ready") == "yes", WAIT, message="ready (vm.ready)")
    detail = page.operator.json("GET", f"/vms/{UBUNTU}")[1]
    assert detail["ready"] is True
    wait_for(lambda: page.cell(UBUNTU, "ip") == detail["ip"], WAIT, message="the IP address")
    wait_for(lambda: page.cell(UBUNTU, "desired").startswith("running"), WAIT,
             message="desired running (the detail read after the start)")
    assert page.cell(UBUNTU, "source") == detail["spec"]["source"] == "api"
    page.button(UBUNTU, "stop").click()
    page.wait_state(UBUNTU, "stopped")
    wait_for(lambda: page.cell(UBUNTU, "desired").startswith("stopped"), WAIT,
             message="desired stopped after a stop")
    assert page.cell(UBUNTU, "ready") == "no" and page.cell(UBUNTU, "ip") == "\u2014"
    assert page.severe_logs() == []


def test_start_suspendable_then_suspend(page: Page) -> None:
    page.button(SEQUOIA, "suspendable").click()
    page.button(SEQUOIA, "start").click()
    page.wait_state(SEQUOIA, "running")
    wait_for(lambda: page.button(SEQUOIA, "suspend").get_attribute("disabled") is None, WAIT,
             message="Suspend enabled for a suspendable run")
    page.button(SEQUOIA, "suspend").click()
    page.wait_state(SEQUOIA, "suspended")
    assert page.operator.json("GET", f"/vms/{SEQUOIA}")[1]["state"] == "suspended"
    assert page.severe_logs() == []


def test_a_refused_action_shows_the_problem_detail(browser: Any,
                                                   operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(args=["--max-running", "1"])
    page = Page(browser, op)
    start_via_api(op, SEQUOIA)
    page.wait_state(SEQUOIA, "running")
    page.button(SONOMA, "start").click()
    wait_for(lambda: page.visible("#notice"), WAIT, message="the refusal is shown")
    status, problem = op.json("POST", f"/vms/{SONOMA}/start")  # the same refusal, over HTTP
    assert status == 409, problem
    assert page.find("#notice-text").text == f"Start {SONOMA} was refused: {problem['detail']}"
    assert page.state(SONOMA) == "stopped"
    assert page.severe_logs(allowed=(r"/start - Failed to load resource: .* 409",)) == []


def test_create_shows_progress_to_100_and_the_new_row(browser: Any,
                                                      operator_factory: Callable[..., Operator]) -> None:
    from selenium.webdriver.support.ui import Select

    op = operator_factory(env={"TART_SIM_PULL_SECONDS": "3", "TART_SIM_PROGRESS_INTERVAL": "0.3"})
    page = Page(browser, op)
    page.wait_row(UBUNTU)
    page.find("#create-name").send_keys("fresh-vm")
    page.find("#create-from").send_keys(UNCACHED_IMAGE)
    page.find("#create-cpu").send_keys("3")
    Select(page.find("#create-restart")).select_by_value("on-failure")
    page.find("#create-submit").click()
    wait_for(lambda: page.visible("#create-progress"), WAIT, message="the progress bar")
    wait_for(lambda: page.find("#create-label").text == "Created fresh-vm", WAIT,
             message=f"the create ends (it says {page.find('#create-label').text!r})")
    assert page.find("#create-percent").text == "100 %"
    assert page.find("#create-bar").get_attribute("value") == "100"
    page.wait_state("fresh-vm", "stopped")
    wait_for(lambda: page.cell("fresh-vm", "cpu") == "3", WAIT, message="the new VM's CPUs")
    assert "restart on-failure" in page.cell("fresh-vm", "desired")
    assert op.json("GET", "/vms/fresh-vm")[1]["spec"]["restart"] == "on-failure"
    ops = op.json("GET", "/operations")[1]
    create = next(o for o in ops if o["kind"] == "create" and o["vm"] == "fresh-vm")
    assert create["state"] == "succeeded"
    assert page.severe_logs() == []


def test_a_refused_create_says_so_in_the_create_panel(page: Page) -> None:
    """After a create that succeeded, a refused one: the panel says why, next to the form
    (the notice at the top of the page may be scrolled away), and no longer that the earlier
    create succeeded; the next accepted create clears the refusal."""
    page.find("#create-name").send_keys("first-copy")
    page.find("#create-from").send_keys(UBUNTU)
    page.find("#create-submit").click()
    wait_for(lambda: page.find("#create-label").text == "Created first-copy", WAIT,
             message=f"the first create ends (it says {page.find('#create-label').text!r})")
    assert not page.visible("#create-refusal")
    page.script("window.scrollTo(0, document.body.scrollHeight);")  # the top is off screen
    page.find("#create-name").clear()
    page.find("#create-name").send_keys(SEQUOIA)  # taken: refused before anything is queued
    page.find("#create-submit").click()
    wait_for(lambda: page.visible("#create-refusal"), WAIT, message="the refusal in the panel")
    status, problem = page.operator.json("POST", "/vms", {"Content-Type": "application/json"},
                                         json.dumps({"name": SEQUOIA, "from": UBUNTU}))
    assert status == 409, problem
    assert page.find("#create-refusal").text == (f"Creating {SEQUOIA} was refused: "
                                                 f"{problem['detail']}")
    assert not page.visible("#create-progress")  # the first create's success is not shown
    assert page.script("const box = arguments[0].getBoundingClientRect();"
                       "return box.top >= 0 && box.bottom <= window.innerHeight;",
                       page.find("#create-refusal")), "the refusal is on screen"
    assert not page.visible("#notice")
    page.find("#create-name").clear()
    page.find("#create-name").send_keys("second-copy")
    page.find("#create-submit").click()
    wait_for(lambda: page.find("#create-label").text == "Created second-copy", WAIT,
             message="the second create ends")
    assert not page.visible("#create-refusal")
    assert page.severe_logs(allowed=(r"/vms - Failed to load resource: .* 409",)) == []


def test_cancel_stops_a_create_and_leaves_no_vm(browser: Any,
                                                operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env={"TART_SIM_PULL_SECONDS": "120"})
    page = Page(browser, op)
    page.wait_row(UBUNTU)
    page.find("#create-name").send_keys("doomed-vm")
    page.find("#create-from").send_keys(UNCACHED_IMAGE)
    page.find("#create-submit").click()
    page.wait_state("doomed-vm", "creating")  # the row shows the create in progress
    assert page.row("doomed-vm").find_element(page.by.CSS_SELECTOR, ".row-bar").is_displayed()
    wait_for(lambda: page.find("#create-cancel").get_attribute("disabled") is None, WAIT,
             message="Cancel enabled")
    page.find("#create-cancel").click()
    wait_for(lambda: page.find("#create-label").text == "Creating doomed-vm was cancelled", WAIT,
             message="the create says it was cancelled")
    wait_for(lambda: page.row("doomed-vm") is None, WAIT, message="no row for the cancelled VM")
    assert op.request("GET", "/vms/doomed-vm")[0] == 404
    assert page.severe_logs() == []


def test_delete_asks_then_the_row_goes(page: Page) -> None:
    page.button(SONOMA, "delete").click()
    dialog = page.find("#confirm-delete")
    wait_for(dialog.is_displayed, WAIT, message="the confirmation")
    assert SONOMA in page.find("#confirm-text").text
    page.find("#confirm-keep").click()  # changed our mind: nothing happens
    assert not dialog.is_displayed()
    assert page.operator.request("GET", f"/vms/{SONOMA}")[0] == 200
    assert page.row(SONOMA) is not None
    page.button(SONOMA, "delete").click()
    wait_for(dialog.is_displayed, WAIT, message="the confirmation")
    page.find("#confirm-yes").click()
    wait_for(lambda: page.row(SONOMA) is None, WAIT, message="the row goes")
    assert page.operator.request("GET", f"/vms/{SONOMA}")[0] == 404
    assert page.row(UBUNTU) is not None
    assert page.severe_logs() == []


def test_html_in_names_renders_as_text_and_runs_nothing(browser: Any, operator: Operator) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    for name in HOSTILE_NAMES:
        cloned = operator.tart("clone", UBUNTU, name)
        assert cloned.returncode == 0, cloned.stderr
    page = Page(browser, operator)
    for name in HOSTILE_NAMES:
        page.wait_row(name)
        assert page.cell(name, "name") == name
    page.button(HOSTILE_NAMES[0], "start").click()
    page.wait_state(HOSTILE_NAMES[0], "running")
    page.row(HOSTILE_NAMES[0]).find_element(page.by.CSS_SELECTOR, ".vm-name").click()
    wait_for(lambda: page.find("#details-title").text == HOSTILE_NAMES[0], WAIT,
             message="the details panel names the VM")
    wait_for(lambda: "booted" in page.find("#log").text, WAIT, message="the run log")
    page.button(HOSTILE_NAMES[1], "delete").click()
    assert f"\u201c{HOSTILE_NAMES[1]}\u201d" in page.find("#confirm-text").text
    page.find("#confirm-keep").click()
    assert page.all("img") == [] and page.all("b") == [] and page.all("i") == []
    assert page.all("svg:not(.timeline)") == []
    with pytest.raises(NoAlertPresentException):
        page.driver.switch_to.alert.text  # noqa: B018 - reading it is the check
    assert page.severe_logs() == []


def test_a_read_token_disables_every_action(browser: Any,
                                            operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN, "VM_OPERATOR_READ_TOKEN": READ_TOKEN})
    page = Page(browser, op)
    wait_for(lambda: page.visible("#login"), WAIT, message="the page asks for a token")
    assert not page.visible("#main")
    page.find("#token-input").send_keys(READ_TOKEN)
    page.find("#login-form button").click()
    page.wait_row(UBUNTU)
    assert page.visible("#readonly")
    buttons = page.all("#vm-rows button[class*='act-']") + page.all("#vm-rows input")
    assert buttons
    for button in buttons:
        assert button.get_attribute("disabled") is not None, button.get_attribute("class")
    assert page.find("#create-fields").get_attribute("disabled") is not None
    assert page.find("#prune-submit").get_attribute("disabled") is not None
    assert page.script("return sessionStorage.getItem('vm-operator-token');") == READ_TOKEN
    assert page.script("return document.cookie;") == ""
    # the same tab keeps the token: a reload does not ask again
    page.driver.refresh()
    page.wait_row(UBUNTU)
    assert not page.visible("#login")
    # forget it, and sign in with the full token: the actions apply again
    page.find("#forget-token").click()
    wait_for(lambda: page.visible("#login"), WAIT, message="the page asks again")
    page.find("#token-input").send_keys(TOKEN)
    page.find("#login-form button").click()
    wait_for(lambda: page.button(UBUNTU, "start").get_attribute("disabled") is None, WAIT,
             message="Start enabled with the full token")
    assert not page.visible("#readonly")
    # only the expected refusals: no token yet (401), the read token's write probe (403)
    assert page.severe_logs(allowed=(r"Failed to load resource: .* (401|403|400)",)) == []


def test_a_wrong_token_is_refused_plainly(browser: Any,
                                          operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN})
    page = Page(browser, op)
    wait_for(lambda: page.visible("#login"), WAIT, message="the page asks for a token")
    page.find("#token-input").send_keys("not-the-token-at-all-0123456789")
    page.find("#login-form button").click()
    wait_for(lambda: page.find("#login-error").text == "That token is not valid.", WAIT,
             message="the refusal")
    assert page.script("return sessionStorage.getItem('vm-operator-token');") is None


def test_the_log_follows_a_running_vm(page: Page) -> None:
    page.button(UBUNTU, "start").click()
    page.wait_state(UBUNTU, "running")
    page.row(UBUNTU).find_element(page.by.CSS_SELECTOR, ".vm-name").click()
    wait_for(lambda: page.visible("#details"), WAIT, message="the details panel")
    wait_for(lambda: "booted" in page.find("#log").text, WAIT, message="the log tail")
    log = page.operator.request("GET", f"/vms/{UBUNTU}/logs?tail=200")[2].decode()
    wait_for(lambda: page.find("#log").text.strip() == log.strip(), WAIT,
             message="the log as the API gives it")
    assert page.find("#log-status").text.startswith("Following")
    # its recent events, from GET /vms/{name}/events and the stream
    wait_for(lambda: "stopped \u2192 running (api)" in page.find("#vm-events").text, WAIT,
             message="the start in the VM's events")
    wait_for(lambda: "vm.ready" in page.find("#vm-events").text, WAIT, message="vm.ready")
    page.find("#details-close").click()
    assert not page.visible("#details")
    assert page.severe_logs() == []


def test_the_page_says_when_the_operator_is_unreachable(page: Page) -> None:
    assert not page.visible("#banner")
    page.operator.stop(signal.SIGTERM)
    wait_for(lambda: page.visible("#banner"), 30, message="the banner")
    assert "The operator is unreachable" in page.find("#banner").text
    page.driver.get_log("browser")  # failed loads are expected now


def test_the_page_comes_back_with_the_operator(browser: Any,
                                              operator_factory: Callable[..., Operator]) -> None:
    first = operator_factory()
    page = Page(browser, first)
    page.wait_row(UBUNTU)
    wait_for(lambda: page.find("#live").text == "live", WAIT, message="reading the stream")
    start_via_api(first, SEQUOIA)  # an event the page has seen: it resumes after its id
    page.wait_state(SEQUOIA, "running")
    first.stop(signal.SIGTERM)
    wait_for(lambda: page.visible("#banner"), 30, message="the banner")
    # the same operator again, on the same port (the page's origin): a new history
    again = operator_factory(args=["--port", str(first.port)], tart_home=first.tart_home,
                             state_dir=first.state_dir)
    wait_for(lambda: not page.visible("#banner"), 30, message="the banner goes")
    wait_for(lambda: page.find("#live").text == "live", 30, message="the stream again")
    start_via_api(again, UBUNTU)
    page.wait_state(UBUNTU, "running")  # followed live from the new stream
    page.driver.get_log("browser")  # the failed loads while it was down are expected


def test_the_page_says_when_tart_cannot_be_run(browser: Any,
                                                operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(args=["--tart", "/nonexistent/tart"])
    page = Page(browser, op)
    wait_for(lambda: page.visible("#banner"), WAIT, message="the banner")
    assert "Tart is unreachable" in page.find("#banner").text


def test_keyboard_and_labels(page: Page) -> None:
    from selenium.webdriver.common.keys import Keys

    unlabelled = page.script(
        "return [...document.querySelectorAll('input, select')]"
        ".filter(e => e.labels.length === 0).map(e => e.id);")
    assert unlabelled == []
    nameless = page.script(
        "return [...document.querySelectorAll('button')]"
        ".filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).map(b => b.id);")
    assert nameless == []
    delete = page.button(UBUNTU, "delete")
    delete.send_keys(Keys.ENTER)  # focus it and press Enter: no mouse
    dialog = page.find("#confirm-delete")
    wait_for(dialog.is_displayed, WAIT, message="the confirmation")
    assert page.driver.switch_to.active_element.get_attribute("id") == "confirm-keep"
    page.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(lambda: not dialog.is_displayed(), WAIT, message="Escape closes it")
    assert page.row(UBUNTU) is not None


def test_readable_at_phone_width(page: Page) -> None:
    page.driver.set_window_size(390, 844)
    wait_for(lambda: page.script("return window.innerWidth <= 420;"), WAIT, message="narrow")
    overflow = page.script("return document.documentElement.scrollWidth - window.innerWidth;")
    assert overflow <= 0
    label = page.script(
        "const cell = document.querySelector('#vm-rows td.col-state');"
        "return getComputedStyle(cell, '::before').content;")
    assert label == json.dumps("State")
    page.button(UBUNTU, "start").click()
    page.wait_state(UBUNTU, "running")


def test_changes_outside_appear_without_a_reload(page: Page) -> None:
    run = page.operator.spawn_run(UBUNTU)
    try:
        page.wait_state(UBUNTU, "running")
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=10)
    page.wait_state(UBUNTU, "stopped")
    assert page.severe_logs() == []


def run_module(page: Page, module: str, body: str) -> Any:
    """Run ``body`` (JavaScript, with the module imported as ``m``) in the page; its value."""
    return page.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"import({json.dumps(module)}).then((m) => {{ {body} }})"
        ".catch((error) => done({error: String(error)}));")


PARSER_CASES = [  # (chunks fed, events parsed, the retry it read)
    # the stream's first line, then an event split across chunks, CRLF line ends
    (["retry: 2000\n\nid: 7\nevent: vm.state\nda", "ta: {\"a\":1}\r\n\r\n"],
     [{"id": "7", "event": "vm.state", "data": "{\"a\":1}"}], 2000),
    # a heartbeat comment is no event; a reset has no id
    ([": heartbeat\n\n", "event: reset\ndata: {\"last_id\": 5}\n\n"],
     [{"id": None, "event": "reset", "data": "{\"last_id\": 5}"}], None),
    # data over two lines is joined with a newline; an event without its blank line waits
    (["data: one\ndata:two\n\n", "data: unfinished\n"],
     [{"id": None, "event": "message", "data": "one\ntwo"}], None),
]


def test_the_event_parser(page: Page) -> None:
    """stream.js's parser of text/event-stream, table-driven, in the page's own browser."""
    for chunks, events, retry in PARSER_CASES:
        got = run_module(page, "/ui/stream.js",
                         "const got = []; const parser = new m.EventParser((e) => got.push(e));"
                         f"for (const chunk of {json.dumps(chunks)}) parser.feed(chunk);"
                         "done({got, retry: parser.retry});")
        assert got == {"got": events, "retry": retry}, chunks


HOUR = 3_600_000


TIMELINE_CASES = [  # (changes [ms into the hour, from, to], the current state, stretches drawn)
    # nothing seen: nothing drawn (the state before the page saw it is not known)
    ([], None, []),
    # no change in the hour: the current state throughout
    ([], "stopped", [[0, HOUR, "stopped"]]),
    # a start half an hour ago: stopped (its "from") until then, running since
    ([[HOUR // 2, "stopped", "running"]], "running",
     [[0, HOUR // 2, "stopped"], [HOUR // 2, HOUR, "running"]]),
    # a change before the window gives the state at its start
    ([[-10, "stopped", "suspended"], [HOUR - 100, "suspended", "running"]], "running",
     [[0, HOUR - 100, "suspended"], [HOUR - 100, HOUR, "running"]]),
    # the first sighting (from null): unknown before it
    ([[HOUR - 1000, None, "running"]], "running", [[HOUR - 1000, HOUR, "running"]]),
]


def test_timeline_stretches(page: Page) -> None:
    """timeline.js's stretches of a VM's last hour, table-driven, in the page's own browser."""
    start = 1_700_000_000_000  # the window's start, in ms
    for changes, current, stretches in TIMELINE_CASES:
        given = [{"time": start + t, "from": f, "to": to} for t, f, to in changes]
        got = run_module(page, "/ui/timeline.js",
                         f"done(m.stretches({json.dumps(given)}, {start + HOUR}, "
                         f"{json.dumps(current)}).map((p) => [p.start - {start}, "
                         f"p.end - {start}, p.state]));")
        assert got == stretches, changes


def test_screenshot_is_in_docs() -> None:
    if _browser_missing() is not None and not SCREENSHOT.exists():
        pytest.skip("no browser to take it")
    assert SCREENSHOT.exists() and SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "docs/dashboard.png" in (REPO_ROOT / "README.md").read_text()

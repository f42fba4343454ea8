"""HTTPS proven by the slower real peers: a real Prometheus scrapes ``/metrics`` over TLS,
and the dashboard works in headless Chromium over HTTPS.

Prometheus (Debian's ``/usr/bin/prometheus``, with a throw-away config and TSDB on a free
127.0.0.1 port) trusts the operator's certificate by its CA file and sends the token; beside
it, a job that does not trust the certificate and one that speaks plain HTTP to the TLS port
must be down. Chromium trusts exactly the operator's key by its SPKI hash
(``--ignore-certificate-errors-spki-list``): the page loads, lists the VMs, reads the event
stream and starts a VM; another certificate on the same address is not trusted.

Without the binaries these tests skip with the reason; ``VM_OPERATOR_REQUIRE_PROMETHEUS=1`` /
``VM_OPERATOR_REQUIRE_BROWSER=1`` (scripts/test.sh in CI) turn that into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from certificates import server_pair, spki_sha256_base64
from conftest import LOCAL_VMS, Operator
from support import free_port, http_request, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "tls-peers-token-0123456789abcdef"
WAIT = 30.0


def _require(variable: str, reason: str) -> None:
    if os.environ.get(variable) == "1" or os.environ.get("CI") == "true":
        pytest.fail(f"{variable}=1 but {reason}")
    pytest.skip(reason)


def tls_operator(factory: Callable[..., Operator], folder: Path,
                 env: dict[str, str | None] | None = None) -> tuple[Operator, Path]:
    cert, key = server_pair(folder)
    return factory(env=env, args=["--tls-cert", str(cert), "--tls-key", str(key)]), cert


# --- Prometheus -----------------------------------------------------------------------------


class Prometheus:
    """``/usr/bin/prometheus`` scraping ``jobs`` every second, on 127.0.0.1 only."""

    def __init__(self, workdir: Path, jobs: list[dict[str, Any]]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": jobs}))
        self.port = free_port()
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={config}",
                 f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            wait_for(self._ready, WAIT, 0.1, message="Prometheus is ready")
            assert self.api("/api/v1/status/flags")["config.file"] == str(config)
        except BaseException:
            self.close()
            raise

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text(errors="replace")[-2000:]
        try:
            return http_request(self.port, "GET", "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def api(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        status, _, body = http_request(self.port, "GET", path + query, timeout=10)
        document = json.loads(body)
        assert status == 200 and document["status"] == "success", document
        return document["data"]

    def targets(self) -> dict[str, dict[str, Any]]:
        active = self.api("/api/v1/targets", [("state", "active")])["activeTargets"]
        return {target["labels"]["job"]: target for target in active}

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def test_prometheus_scrapes_metrics_over_tls(operator_factory: Callable[..., Operator],
                                             tmp_path: Path) -> None:
    if not (PROMETHEUS.is_file() and os.access(PROMETHEUS, os.X_OK)):
        _require("VM_OPERATOR_REQUIRE_PROMETHEUS", f"no {PROMETHEUS} (apt-get install "
                 "prometheus)")
    operator, cert = tls_operator(operator_factory, tmp_path / "pki",
                                  env={"VM_OPERATOR_TOKEN": TOKEN})
    target = {"targets": [f"127.0.0.1:{operator.port}"]}
    token = {"type": "Bearer", "credentials": TOKEN}
    prometheus = Prometheus(tmp_path / "prometheus", [
        {"job_name": "trusted", "scheme": "https", "metrics_path": "/metrics",
         "tls_config": {"ca_file": str(cert)}, "authorization": token,
         "static_configs": [target]},
        {"job_name": "untrusted", "scheme": "https", "metrics_path": "/metrics",
         "authorization": token, "static_configs": [target]},
        {"job_name": "plain", "scheme": "http", "metrics_path": "/metrics",
         "static_configs": [target]},
    ])
    try:
        def scraped() -> dict[str, dict[str, Any]] | None:
            targets = prometheus.targets()
            done = all(t["health"] != "unknown" for t in targets.values()) and len(targets) == 3
            return targets if done and targets["trusted"]["health"] == "up" else None

        targets = wait_for(scraped, WAIT, 0.2, message="Prometheus scraped every job")
        assert targets["trusted"]["lastError"] == ""
        assert targets["trusted"]["scrapeUrl"].startswith("https://127.0.0.1:")
        assert targets["untrusted"]["health"] == "down"
        assert "certificate" in targets["untrusted"]["lastError"]
        assert targets["plain"]["health"] == "down"
        # the operator's own series, as scraped over TLS (the first scrape counts itself)
        wait_for(lambda: prometheus.api("/api/v1/query", [
            ("query", 'vm_operator_http_requests_total{job="trusted",route="/metrics"}')]
        )["result"], WAIT, 0.2, message="the operator's request counter stored")
    finally:
        prometheus.close()


# --- Chromium ---------------------------------------------------------------------------------


@pytest.fixture
def chromium_trusting(tmp_path: Path) -> Iterator[Callable[[Path], Any]]:
    """A factory of headless Chromium that trusts exactly one certificate's key."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        _require("VM_OPERATOR_REQUIRE_BROWSER", "selenium is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            _require("VM_OPERATOR_REQUIRE_BROWSER", f"{path} is missing (apt-get install "
                     "chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []

    def start(cert: Path) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
                     "--disable-background-networking", "--disable-sync",
                     "--disable-component-update", "--disable-default-apps", "--no-first-run",
                     "--disable-domain-reliability", "--no-pings", "--dns-prefetch-disable",
                     "--disable-features=Translate,OptimizationHints,MediaRouter",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                     f"--ignore-certificate-errors-spki-list={spki_sha256_base64(cert)}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    try:
        yield start
    finally:
        for driver in drivers:
            driver.quit()


def test_the_dashboard_works_over_https(operator_factory: Callable[..., Operator],
                                        chromium_trusting: Callable[[Path], Any],
                                        tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    operator, cert = tls_operator(operator_factory, tmp_path / "pki")
    driver = chromium_trusting(cert)
    driver.get(f"https://127.0.0.1:{operator.port}/")

    def script(code: str, *args: Any) -> Any:
        return driver.execute_script(code, *args)

    def state(name: str) -> str:
        return str(script("const row = [...document.querySelectorAll('#vm-rows tr')]"
                          ".find((r) => r.dataset.vm === arguments[0]);"
                          "return row ? row.querySelector('.state').innerText : '';",
                          name)).strip()

    assert script("return location.protocol;") == "https:"
    assert script("return window.isSecureContext;") is True
    for name in LOCAL_VMS:
        wait_for(lambda name=name: state(name), WAIT, message=f"a row for {name}")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#live").text == "live", WAIT,
             message="the page reads the event stream over TLS")
    script("[...document.querySelectorAll('#vm-rows tr')].find((r) => r.dataset.vm === "
           "'ubuntu-runner').querySelector('.act-start').click();")
    wait_for(lambda: state("ubuntu-runner") == "running", WAIT,
             message="the started VM's row says running")
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []

    # the same address with another certificate: not trusted, no page
    other, _ = tls_operator(operator_factory, tmp_path / "other")
    driver.get(f"https://127.0.0.1:{other.port}/")  # loads the browser's warning instead
    assert script("return document.querySelector('#vm-rows') === null;") is True

"""The dashboard keeps the newest it knows of a VM: an answer that arrives late does not undo it.

A running VM's detail asks Tart for its IP and answers later than a stopped one's, so the detail
read when a VM starts can arrive after the VM stopped and after the next detail said so. The page
in the real browser (test_dashboard's), its answer to that first read held back in the page until
the VM has stopped; then let through.
"""

from __future__ import annotations

import signal

from conftest import wait_for
from test_dashboard import UBUNTU, Page, browser, page  # noqa: F401 (browser and page: fixtures)

# Holds back the first answer to GET /vms/{name} that says "running"; window.__release(done)
# lets it through and calls done once the page has read it (the page's own continuations are
# microtasks, run before the timer that calls done).
HOLD = """
const path = arguments[0];
const fetchNow = window.fetch.bind(window);
window.__release = null;
window.fetch = (input, init) => {
  const answer = fetchNow(input, init);
  if (String(input) !== path || window.__release !== null) return answer;
  return answer.then((response) => response.clone().json().then((body) => {
    if (body.state !== "running" || window.__release !== null) return response;
    return new Promise((resolve) => {
      window.__release = (done) => {
        const json = response.json.bind(response);
        response.json = () => {
          const read = json();
          read.then(() => setTimeout(done, 0));
          return read;
        };
        resolve(response);
      };
    });
  }));
};
"""


def test_a_late_detail_of_a_running_vm_does_not_undo_its_stop(page: Page) -> None:  # noqa: F811
    page.script(HOLD, f"/vms/{UBUNTU}")
    run = page.operator.spawn_run(UBUNTU)
    try:
        page.wait_state(UBUNTU, "running")
        wait_for(lambda: page.script("return window.__release !== null"), 20.0,
                 message="the page read the detail of the running VM")
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=10)
    page.wait_state(UBUNTU, "stopped")
    page.driver.execute_async_script("window.__release(arguments[arguments.length - 1]);")
    assert page.state(UBUNTU) == "stopped"
    assert page.severe_logs() == []

"""End to end in a real browser (Playwright driving Debian's Chromium): sign in, upload an image, see the heat map
and the audit entry. Skipped where Playwright or Chromium is missing (``apt-get install chromium``,
``pip install playwright``; Playwright's own browser download is not used).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from tests.service.conftest import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")


@pytest.fixture(scope="module")
def live_url(service):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def sign_in(page, url, username):
    page.goto(f"{url}/ui/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_clinician_sees_heat_map_and_admin_sees_the_audit_entry(live_url, browser, bundles):
    errors = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, live_url, "cleo")
    page.wait_for_selector(".card")
    page.goto(f"{live_url}/ui/#/model/breast/1")
    page.set_input_files("input[type=file]", str(bundles["png"]))
    page.click("button[type=submit]")
    heat_map = page.wait_for_selector("img.explanation", timeout=60_000)
    assert heat_map.get_attribute("src").startswith("data:image/png;base64,")
    assert "Prediction:" in page.inner_text("main") and "recorded in the audit log" in page.inner_text("main")
    page.click("#signout")

    sign_in(page, live_url, "ada")
    page.wait_for_selector("table td")
    page.fill("input[name=action]", "explain")
    page.click("form.row button[type=submit]")
    first_row = page.locator("table tr").nth(1)  # the newest entry (row 0 is the header)
    sync_api.expect(first_row.locator("td").nth(4)).to_have_text("explain")  # (no eval: the page's CSP forbids it)
    first_row = first_row.inner_text()
    assert "cleo" in first_row and "breast" in first_row
    page.click("text=Verify chain")
    assert "Hash chain intact" in page.wait_for_selector(".notice").inner_text()
    assert errors == []

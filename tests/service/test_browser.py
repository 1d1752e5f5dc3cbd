"""End to end in a real browser (Playwright driving Debian's Chromium): sign in, upload an image, see the heat map
and the audit entry. Skipped where Playwright or Chromium is missing (``apt-get install chromium``,
``pip install playwright``; Playwright's own browser download is not used).
"""

from __future__ import annotations

import shutil

import pytest

from tests.service.conftest import PASSWORD, served

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")


@pytest.fixture(scope="module")
def live_url(service):
    with served(service.app) as url:
        yield url


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


def signed_in_page(browser, url, username):
    """A new laptop-sized page signed in as ``username``, on the model list, and the list its script errors go to."""
    errors = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, url, username)
    page.wait_for_selector(".card")
    return page, errors


def test_clinician_sees_heat_map_and_admin_sees_the_audit_entry(live_url, browser, bundles):
    page, errors = signed_in_page(browser, live_url, "cleo")
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


def test_far_out_lab_values_show_the_out_of_distribution_warning_with_its_reason(live_url, browser):
    page, errors = signed_in_page(browser, live_url, "cleo")
    page.goto(f"{live_url}/ui/#/model/labs/1")
    page.fill("input[name=glucose]", "5000")
    page.fill("input[name=age]", "900")
    page.select_option("select[name=smoker]", "no")
    page.click("button[type=submit]")
    warning = page.wait_for_selector("p.warning", timeout=60_000)
    assert "Out-of-distribution warning" in warning.inner_text()
    assert "reconstruction error" in page.inner_text("p.warning small.reason")
    assert errors == []

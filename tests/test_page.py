"""The page at `/` in a real browser: Debian's Chromium, driven by playwright.

The Procfile command serves the page and the API against the sandbox; the browser
loads the page, picks a model, sends, and reads the streamed answer and the errors.
"""
from __future__ import annotations

import shutil

import pytest

from bingo.sandbox import source_for
from tests.helpers import expected_content
from tests.test_e2e import Gateway

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium binary on PATH (apt-get install chromium)", allow_module_level=True)

KEY = "sk-page-SECRET-KEY-0123456789"
WAIT_MS = 8000  # every wait is bounded; a sandbox answer takes about a second


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        # Debian's browser, never a downloaded one; --no-sandbox because CI runs as root.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def open_gateway(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("page") / "gunicorn.log", bare=True)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def keyed_gateway(sandbox_server, tmp_path_factory):
    gw = Gateway(sandbox_server, tmp_path_factory.mktemp("page-key") / "gunicorn.log", bare=True, BINGO_API_KEYS=KEY)
    yield gw
    gw.stop()
    assert KEY not in gw.log()


@pytest.fixture()
def page(browser, open_gateway, sandbox):
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(open_gateway.base + "/")
    yield page
    context.close()


def ask(page, model: str, prompt: str) -> None:
    page.get_by_label("Model").select_option(model)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Send").click()


def test_page_lists_the_models(page):
    sync_api.expect(page.locator("#model option")).to_have_count(9)
    options = page.locator("#model option").all_inner_texts()
    assert "Creative" in options and "copilot-think-deeper" in options


def test_page_streams_the_answer_with_markdown_and_reasoning_apart(page, tmp_path):
    prompt = "Hello [sandbox:think=1]"
    ask(page, "copilot-think-deeper", prompt)
    sync_api.expect(page.get_by_role("status")).to_have_text("Done.")
    answer = page.locator("#answer")
    text = answer.inner_text()
    assert text.startswith(f"Echo: {prompt}") and "This answer comes from the bingo sandbox" in text
    assert "**" not in text and "[^1]" not in text  # rendered, not shown as source
    assert answer.locator("strong").first.inner_text() == "cumulative"
    assert answer.locator("code").first.inner_text() == "answer_for(prompt)"
    assert answer.locator("sup a.fnref").first.get_attribute("href") == "#fn-1"
    source = source_for(prompt)
    assert expected_content(prompt).endswith(f"[^1]: [{source.title}]({source.url})")
    link = answer.locator(".footnotes #fn-1 a")
    assert (link.inner_text(), link.get_attribute("href")) == (source.title, source.url)
    reasoning = page.locator("#reasoning")
    sync_api.expect(reasoning).to_be_visible()
    reasoning.locator("summary").click()
    assert "Reading the question." in reasoning.inner_text()
    assert "Reading the question." not in text
    assert page.locator("#error").is_hidden()
    page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)


def test_page_escapes_html_in_the_answer(page):
    prompt = '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>'
    ask(page, "copilot", prompt)
    sync_api.expect(page.get_by_role("status")).to_have_text("Done.")
    sync_api.expect(page.locator("#answer")).to_contain_text(f"Echo: {prompt}")  # waits for the render
    assert page.locator("#answer img, #answer script").count() == 0
    assert page.locator("#answer").inner_text().startswith(f"Echo: {prompt}")
    assert page.evaluate("window.pwned") is None


def test_page_shows_an_http_error_with_its_message(page, tmp_path):
    ask(page, "Creative", "Hello [sandbox:error=too-many-messages]")
    error = page.get_by_role("alert")
    sync_api.expect(error).to_be_visible()
    assert error.inner_text().startswith("Error 429 (rate_limit_exceeded): ")
    assert "throttled" in error.inner_text()
    sync_api.expect(page.get_by_role("status")).to_have_text("Failed.")
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)


def test_page_shows_an_in_band_error_after_the_first_text(page, tmp_path):
    ask(page, "copilot", "Hello [sandbox:drop]")
    sync_api.expect(page.get_by_role("alert")).to_be_visible()
    sync_api.expect(page.get_by_role("status")).to_have_text("Failed.")
    assert page.locator("#answer").inner_text().startswith("Echo: Hello [sandbox:drop]")
    assert page.get_by_role("alert").inner_text().startswith("Error (upstream")
    page.screenshot(path=str(tmp_path / "in-band.png"), full_page=True)


def test_page_asks_for_the_key_and_keeps_it(browser, keyed_gateway, sandbox, tmp_path):
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        page.goto(keyed_gateway.base + "/")
        key = page.get_by_label("API key")
        sync_api.expect(key).to_be_visible()
        assert "needs an API key" in page.locator("#key-note").inner_text()
        page.screenshot(path=str(tmp_path / "key.png"), full_page=True)
        key.fill("sk-wrong")
        page.get_by_role("button", name="Use key").click()
        sync_api.expect(page.locator("#key-note")).to_contain_text("The key was refused")
        key.fill(KEY)
        page.get_by_role("button", name="Use key").click()
        sync_api.expect(page.locator("#model option")).to_have_count(9)
        assert key.is_hidden()
        ask(page, "copilot", "Hello")
        sync_api.expect(page.get_by_role("status")).to_have_text("Done.")
        assert page.locator("#answer").inner_text().startswith("Echo: Hello")
        page.reload()  # the key stays in localStorage
        sync_api.expect(page.locator("#model option")).to_have_count(9)
        assert key.is_hidden()
    finally:
        context.close()

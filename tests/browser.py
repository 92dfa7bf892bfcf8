"""Open a page in real headless Chromium and report what a learner's browser would show.

Chromium is driven over the DevTools protocol with aiohttp's websocket client (aiohttp is
pinned for the async server already): no browser-automation package. open_page() returns
what went wrong (exceptions, console errors, resources that failed to load) and what the
page's script found; a test asserts on those.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
from support import wait_until

NAMES = ("chromium", "chromium-browser", "google-chrome")
FOUND = """(() => ({
  svgs: document.querySelectorAll("svg").length,
  links: Array.from(document.querySelectorAll("a[href]"), a => a.getAttribute("href")),
  images: Array.from(document.querySelectorAll("img[src]"), i => i.getAttribute("src")),
  frames: document.querySelectorAll("g.frame").length,
}))()"""


def assert_opens_cleanly(page, problems, found, charts):
    """No exception, console error or failed load; its charts drawn; its local links real."""
    assert problems == [], f"{page}: {problems}"
    assert found["svgs"] >= charts, f"{page}: {found['svgs']} charts"
    for target in found["links"] + found["images"]:
        if not re.match(r"[a-z]+:|#", target):
            assert (page.parent / target).exists(), f"{page} links to missing {target}"


def chromium_or_skip():
    """The browser's command, or skip the test saying why there is none."""
    found = next((shutil.which(name) for name in NAMES if shutil.which(name)), None)
    if not found:
        pytest.skip("chromium is not installed: ./run_tests.sh installs it when run as root "
                    "on Debian or Ubuntu (apt-get install chromium)")
    return found


def problems_in(event):
    """The sentence for an event that means the page is broken, else None."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}"
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        return f"log error: {params['entry']['text']} ({params['entry'].get('url')})"
    if method == "Runtime.consoleAPICalled" and params["type"] == "error":
        return f"console.error: {[arg.get('value') for arg in params['args']]}"
    if method == "Network.loadingFailed":
        return f"failed to load: {params.get('errorText')} ({params['requestId']})"
    return None


async def visit(ws_url, page_urls, script):
    """Load each page in a new tab; [(problems, what script returned)] for each."""
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        ids, found = iter(range(1, 10_000)), []

        async def call(method, session_id=None, **params):
            number = next(ids)
            await ws.send_json({"id": number, "method": method, "params": params,
                                **({"sessionId": session_id} if session_id else {})})
            while True:
                message = json.loads((await ws.receive(timeout=10)).data)
                if message.get("id") == number:
                    assert "error" not in message, message
                    return message["result"]
                events.append(message)

        for url in page_urls:
            events = []
            target = (await call("Target.createTarget", url="about:blank"))["targetId"]
            tab = (await call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                await call(f"{domain}.enable", tab)
            await call("Page.navigate", tab, url=url)
            deadline = time.monotonic() + 10
            while not any(e.get("method") == "Page.loadEventFired" for e in events):
                assert time.monotonic() < deadline, f"{url} did not load in 10 s"
                events.append(json.loads((await ws.receive(timeout=10)).data))
            result = await call("Runtime.evaluate", tab, expression=script, returnByValue=True,
                                awaitPromise=True)
            await asyncio.sleep(0.3)  # what the page's script logs as it settles
            await call("Runtime.evaluate", tab, expression="1")
            problems = [p for p in map(problems_in, events) if p]
            found.append((problems, result["result"].get("value")))
            await call("Target.closeTarget", targetId=target)
    return found


def open_pages(paths, script=FOUND):
    """[(problems, found)] for each local file, opened in headless Chromium one after the
    other; skips the test where there is no Chromium."""
    command = chromium_or_skip()
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [command, "--headless", "--remote-debugging-port=0", "--no-sandbox",
             "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            return asyncio.run(visit(devtools_url(Path(profile), browser),
                                     [path.resolve().as_uri() for path in paths], script))
        finally:
            stop_all_of(browser)


def stop_all_of(browser):
    """SIGTERM to the browser and every helper it started (its session's process group), then
    wait until none is left: a helper still writing into the profile folder made its removal
    fail ("Directory not empty: 'Default'", once in a suite run). SIGKILL after 10 s."""
    def gone():
        try:
            os.killpg(browser.pid, 0)
            return False
        except ProcessLookupError:
            return True
    for stop_signal in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(browser.pid, stop_signal)
        except ProcessLookupError:
            break
        try:
            browser.wait(timeout=10)  # the browser itself: a zombie would keep its group
        except subprocess.TimeoutExpired:
            continue
        if wait_until(gone, 10, 0.1):
            break


def devtools_url(profile, browser):
    """The browser's DevTools websocket: with port 0 it picks a free port and writes it, and
    the socket's path, to DevToolsActivePort in its profile folder."""
    written, deadline = profile / "DevToolsActivePort", time.monotonic() + 15
    while not (written.exists() and len(written.read_text().split()) == 2):
        assert browser.poll() is None, f"chromium exited with status {browser.returncode}"
        assert time.monotonic() < deadline, "chromium did not open DevTools in 15 s"
        time.sleep(0.05)
    port, path = written.read_text().split()
    return f"ws://127.0.0.1:{port}{path}"

"""A headless Chromium that tests drive as a person would: type, click, pick a file, read the page.

It speaks the DevTools protocol over a pipe (``--remote-debugging-pipe``: NUL-separated JSON on file
descriptors 3 and 4), so no driver library or browser download is needed beyond the Chromium that
``make test`` installs where it can.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Browser:
    """One Chromium process; ``open(url)`` gives a tab."""

    def __init__(self, chromium: str, profile: Path) -> None:
        ours_in, chrome_in = os.pipe()  # chrome reads commands on its fd 3
        chrome_out, ours_out = os.pipe()  # and writes answers and events on its fd 4

        def onto_3_and_4() -> None:  # in the child, before exec
            a, b = os.dup(ours_in), os.dup(ours_out)  # first out of the way of 3 and 4
            os.dup2(a, 3)
            os.dup2(b, 4)

        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-pipe",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            [chromium, *flags, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=onto_3_and_4,
        )
        os.close(ours_in)
        os.close(ours_out)
        self._write, self._read_fd = chrome_in, chrome_out
        self._buffer, self._events, self._last = b"", [], 0

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.time()
            if left <= 0 or not select.select([self._read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> Any:
        self._last += 1
        command: dict[str, Any] = {"id": self._last, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self._write, json.dumps(command).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            message = self._message(deadline)
            if message.get("id") == self._last:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self._events.append(message)

    def event(self, method: str, session: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            for i, message in enumerate(self._events):
                if message.get("method") == method and message.get("sessionId") == session:
                    return self._events.pop(i)
            self._events.append(self._message(deadline))

    def open(self, url: str) -> Tab:
        return Tab(self, url)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read_fd)


class Tab:
    """A page loaded in its own target; every call goes through the page's DOM and script."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Page.navigate", url=url)
        browser.event("Page.loadEventFired", self.session)

    def send(self, method: str, **params: Any) -> Any:
        return self.browser.send(method, self.session, **params)

    def js(self, expression: str) -> Any:
        """The value of a script expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type_into(self, selector: str, text: str) -> None:
        """Focus the field and type the text as keyboard input."""
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def choose_file(self, selector: str, path: Path) -> None:
        """Pick a file in a file input, as the file dialog would (the page sees its change event)."""
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(path)])

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        """The expression's value once it is truthy."""
        deadline = time.time() + timeout
        while True:
            value = self.js(expression)
            if value or time.time() > deadline:
                assert value, f"still false after {timeout} s: {expression}"
                return value
            time.sleep(0.05)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (make test installs it where it can)")
    chrome = Browser(CHROMIUM, tmp_path / "profile")
    try:
        yield chrome
    finally:
        chrome.close()

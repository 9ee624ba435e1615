"""A small driver for headless Chromium over the Chrome DevTools Protocol, standard library only.

Chromium started with ``--remote-debugging-pipe`` reads protocol messages (JSON, each ended by a NUL byte) on
its file descriptor 3 and writes its replies and events on descriptor 4. The driver makes those two pipes,
creates one page target and attaches to it with a flat session, so every page command carries that session's
id and browser commands (downloads, closing) carry none. Input goes through ``Input.dispatchMouseEvent`` and
``Input.dispatchKeyEvent``, the events a real mouse and keyboard make, not through synthetic DOM events::

    with Browser(chromium()) as browser:
        browser.navigate(path.as_uri())
        browser.click("#next")
        assert browser.evaluate("document.title") == "..."
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# key -> (code, windowsVirtualKeyCode, text) for Input.dispatchKeyEvent; single characters are built on the fly.
KEYS = {
    "Enter": ("Enter", 13, "\r"), "Tab": ("Tab", 9, ""), "Escape": ("Escape", 27, ""),
    "Backspace": ("Backspace", 8, ""), "Delete": ("Delete", 46, ""), " ": ("Space", 32, " "),
    "ArrowLeft": ("ArrowLeft", 37, ""), "ArrowUp": ("ArrowUp", 38, ""), "ArrowRight": ("ArrowRight", 39, ""),
    "ArrowDown": ("ArrowDown", 40, ""), "Home": ("Home", 36, ""), "End": ("End", 35, ""),
    "PageUp": ("PageUp", 33, ""), "PageDown": ("PageDown", 34, ""),
}
MODIFIERS = {"Alt": 1, "Control": 2, "Meta": 4, "Shift": 8}


class BrowserError(RuntimeError):
    """The browser failed, answered a command with an error, or did not answer in time."""


class JavaScriptError(BrowserError):
    """An expression given to :meth:`Browser.evaluate` threw."""


@dataclass(frozen=True)
class Download:
    path: Path  # where the file is, named by the browser's download id
    suggested_filename: str  # the name the page gave it (an <a download> attribute)
    url: str


class Browser:
    """Headless Chromium with one page, driven over ``--remote-debugging-pipe``.

    ``timeout`` (seconds) bounds every wait. The browser's own log (stderr) goes to ``log`` in its scratch
    profile folder and its tail is quoted when something fails. :meth:`close` (or leaving the ``with`` block)
    ends the browser and removes the profile.
    """

    def __init__(self, executable: str, *, timeout: float = 20.0, width: int = 1280, height: int = 900,
                 args: tuple[str, ...] = ()):
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []  # received, not yet taken by wait_event
        self.session: str | None = None
        self.session_target: str | None = None
        self._next_id = 0
        self._buffer = b""
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        self.log = Path(self._profile.name) / "log"
        command = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}/profile", "--no-first-run",
                   "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                   "--disable-sync", "--mute-audio", f"--window-size={width},{height}", *args, "about:blank"]
        to_browser, self._write_fd = os.pipe()
        self._read_fd, from_browser = os.pipe()
        # The browser wants the pipes as its descriptors 3 and 4. Popen puts them at 0 and 1 (it sorts out any
        # clash of numbers), and a shell moves them to 3 and 4 (single digits, which every sh can redirect)
        # before it execs the browser with /dev/null as input and its output going to the log.
        try:
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(
                    ["/bin/sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>&2', "sh", *command],
                    stdin=to_browser, stdout=from_browser, stderr=log)
        finally:
            os.close(to_browser)
            os.close(from_browser)
        try:
            self.new_page(width, height)
        except BaseException:
            self.close()
            raise

    # -- the protocol ------------------------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, *, browser_level: bool = False) -> int:
        """Send a command (to the page's session, or to the browser itself) without waiting; its id."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser_level:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._write_fd, data):]
        return self._next_id

    def command(self, method: str, params: dict | None = None, *, browser_level: bool = False,
                timeout: float | None = None) -> dict[str, Any]:
        """Send a command and wait for its result; events arriving meanwhile are kept for :meth:`wait_event`."""
        message_id = self.send(method, params, browser_level=browser_level)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._receive(deadline, f"the answer to {method}")
            if message.get("id") == message_id:
                if "error" in message:
                    raise BrowserError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method: str, predicate: Callable[[dict], bool] | None = None,
                   timeout: float | None = None) -> dict[str, Any]:
        """The parameters of the first event ``method`` (whose parameters satisfy ``predicate``), received before
        or after this call; the event is taken from :attr:`events`."""
        def matches(message: dict) -> bool:
            return message.get("method") == method and (predicate is None or predicate(message.get("params", {})))

        for index, message in enumerate(self.events):
            if matches(message):
                return self.events.pop(index).get("params", {})
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._receive(deadline, f"event {method}")
            if matches(message):
                return message.get("params", {})
            if "method" in message:
                self.events.append(message)

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"timed out waiting for {waiting_for}{self._log_tail()}")
            readable, _, _ = select.select([self._read_fd], [], [], remaining)
            if readable:
                chunk = os.read(self._read_fd, 1 << 16)
                if not chunk:
                    raise BrowserError(f"the browser closed its pipe while waiting for {waiting_for}"
                                       f"{self._log_tail()}")
                self._buffer += chunk
        data, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(data)

    def _log_tail(self) -> str:
        try:
            return "\nbrowser log:\n" + self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # -- pages -------------------------------------------------------------------------------------------------
    def new_page(self, width: int = 1280, height: int = 900) -> None:
        """Open a fresh page (closing the current one) and attach to it; page and runtime events enabled."""
        old = self.session_target if self.session else None
        self.session = None
        target = self.command("Target.createTarget", {"url": "about:blank"})
        self.session_target = target["targetId"]
        self.session = self.command("Target.attachToTarget", {"targetId": self.session_target, "flatten": True},
                                    browser_level=True)["sessionId"]
        if old:
            self.command("Target.closeTarget", {"targetId": old}, browser_level=True)
        self.events.clear()
        self.command("Page.enable")
        self.command("Runtime.enable")
        self.command("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self.events = [event for event in self.events if event.get("method") != "Page.loadEventFired"]
        result = self.command("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"could not open {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        """The value of a JavaScript expression in the page (a promise's, awaited), as JSON; raises
        :class:`JavaScriptError` with the exception when it throws."""
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                   "awaitPromise": await_promise, "userGesture": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise JavaScriptError(f"{expression!r} threw: "
                                  f"{details.get('exception', {}).get('description') or details.get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None, interval: float = 0.05) -> Any:
        """Evaluate ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression!r} (last value {value!r})")
            time.sleep(interval)

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions the page has reported (Runtime.exceptionThrown) so far."""
        return [event["params"]["exceptionDetails"].get("exception", {}).get("description")
                or event["params"]["exceptionDetails"].get("text", "")
                for event in self.events if event.get("method") == "Runtime.exceptionThrown"]

    # -- input -------------------------------------------------------------------------------------------------
    def box_centre(self, selector: str) -> tuple[float, float]:
        """The viewport coordinates of the centre of ``selector``'s element, scrolled into view first."""
        box = self.evaluate(f"""(() => {{
            const node = document.querySelector({json.dumps(selector)});
            if (!node) return null;
            node.scrollIntoView({{block: "center", inline: "center"}});
            const r = node.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height];
        }})()""")
        if box is None:
            raise BrowserError(f"no element matches {selector!r}")
        if box[2] == 0 or box[3] == 0:
            raise BrowserError(f"{selector!r} is not visible (its box is {box[2]} x {box[3]})")
        return box[0], box[1]

    def mouse(self, kind: str, x: float, y: float, *, pressed: bool = False, click_count: int = 0) -> None:
        """One Input.dispatchMouseEvent: ``kind`` mouseMoved, mousePressed or mouseReleased at (x, y), with the
        left button (held down when ``pressed``)."""
        self.command("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                  "buttons": 1 if pressed else 0, "clickCount": click_count})

    def click(self, selector: str) -> None:
        """Move to the centre of ``selector``'s element, press and release the left button there."""
        x, y = self.box_centre(selector)
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, pressed=True, click_count=1)
        self.mouse("mouseReleased", x, y, click_count=1)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 5) -> None:
        """Press the left button at ``start``, move to ``end`` in ``steps`` and release there."""
        self.mouse("mouseMoved", *start)
        self.mouse("mousePressed", *start, pressed=True, click_count=1)
        for step in range(1, steps + 1):
            fraction = step / steps
            self.mouse("mouseMoved", start[0] + (end[0] - start[0]) * fraction,
                       start[1] + (end[1] - start[1]) * fraction, pressed=True)
        self.mouse("mouseReleased", *end, click_count=1)

    def select_text(self, selector: str, start: int, end: int) -> str:
        """Select characters ``start:end`` of ``selector``'s text (offsets into its textContent, in UTF-16 units)
        by dragging the mouse from the left edge of the first to the right edge of the last; the selection's
        text afterwards."""
        points = self.evaluate(f"""(() => {{
            const root = document.querySelector({json.dumps(selector)});
            root.scrollIntoView({{block: "center"}});
            const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            const rectOf = (index) => {{
                let seen = 0;
                for (let node = walker.nextNode(); node; node = walker.nextNode()) {{
                    if (index < seen + node.data.length) {{
                        const range = document.createRange();
                        range.setStart(node, index - seen);
                        range.setEnd(node, index - seen + 1);
                        return range.getClientRects()[0];
                    }}
                    seen += node.data.length;
                }}
                return null;
            }};
            const first = rectOf({int(start)});
            walker.currentNode = root;
            const last = rectOf({int(end) - 1});
            if (!first || !last) return null;
            return [first.left + 1, first.top + first.height / 2, last.right - 1, last.top + last.height / 2];
        }})()""")
        if points is None:
            raise BrowserError(f"{selector!r} has no characters {start}:{end}")
        self.drag((points[0], points[1]), (points[2], points[3]))
        return self.evaluate("window.getSelection().toString()")

    def select_option(self, selector: str, label: str) -> None:
        """Choose the option labelled ``label`` of the <select> ``selector`` as a user does: click it open, arrow
        down (or up) to the option and press Enter."""
        steps = self.evaluate(f"""(() => {{
            const select = document.querySelector({json.dumps(selector)});
            const wanted = [...select.options].findIndex((option) => option.text === {json.dumps(label)});
            return wanted < 0 ? null : wanted - select.selectedIndex;
        }})()""")
        if steps is None:
            raise BrowserError(f"{selector!r} has no option {label!r}")
        self.click(selector)
        for _ in range(abs(steps)):
            self.press("ArrowDown" if steps > 0 else "ArrowUp")
        self.press("Enter")

    def press(self, key: str, modifiers: tuple[str, ...] = ()) -> None:
        """Press and release ``key`` (a KeyboardEvent.key: "Enter", "ArrowDown", "a", "3", ...) with
        ``modifiers`` ("Shift", "Control", "Alt", "Meta") held."""
        if key in KEYS:
            code, key_code, text = KEYS[key]
        elif len(key) == 1:
            code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}" if key.isalpha() else ""
            key_code, text = ord(key.upper()), key
        else:
            raise ValueError(f"unknown key {key!r}; known: {sorted(KEYS)} and single characters")
        flags = sum(MODIFIERS[name] for name in modifiers)
        if flags & ~MODIFIERS["Shift"]:
            text = ""  # a shortcut, not typing
        down = {"type": "keyDown" if text else "rawKeyDown", "key": key, "code": code,
                "windowsVirtualKeyCode": key_code, "nativeVirtualKeyCode": key_code, "modifiers": flags}
        if text:
            down.update(text=text, unmodifiedText=text)
        self.command("Input.dispatchKeyEvent", down)
        self.command("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                                "windowsVirtualKeyCode": key_code,
                                                "nativeVirtualKeyCode": key_code, "modifiers": flags})

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element (Input.insertText, as an input method would)."""
        self.command("Input.insertText", {"text": text})

    def set_file_input(self, selector: str, path: str | os.PathLike) -> None:
        """Choose ``path`` in the file input ``selector``, as the file dialog would (its change event fires)."""
        result = self.command("Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(selector)})"})
        object_id = result["result"].get("objectId")
        if object_id is None:
            raise BrowserError(f"no element matches {selector!r}")
        self.command("DOM.setFileInputFiles", {"files": [str(Path(path).resolve())], "objectId": object_id})

    # -- downloads ---------------------------------------------------------------------------------------------
    def allow_downloads(self, folder: str | os.PathLike) -> None:
        """Save downloads in ``folder`` (each named by its download id) and report their progress."""
        self.command("Browser.setDownloadBehavior", {"behavior": "allowAndName", "downloadPath": str(folder),
                                                     "eventsEnabled": True}, browser_level=True)
        self._download_folder = Path(folder)

    def wait_download(self, timeout: float | None = None) -> Download:
        """The next download (after :meth:`allow_downloads`), once complete."""
        begun = self.wait_event("Browser.downloadWillBegin", timeout=timeout)
        progress = self.wait_event("Browser.downloadProgress",
                                   lambda params: params.get("guid") == begun["guid"]
                                   and params.get("state") in ("completed", "canceled"), timeout=timeout)
        if progress["state"] != "completed":
            raise BrowserError(f"the download of {begun['suggestedFilename']} was cancelled")
        return Download(self._download_folder / begun["guid"], begun["suggestedFilename"], begun["url"])

    # -- the end -----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Ask the browser to close, end it if it does not within a few seconds, and remove its profile."""
        if self.process.poll() is None:
            try:
                self.send("Browser.close", browser_level=True)
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=5)
        for fd in (self._write_fd, self._read_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

"""The prompt playground (notebook 10) as a person uses it, in a real browser.

JupyterLab is started here (free port, token, a temporary root holding notebook 10 with its parameters set to the
``smoke`` scale and ``interactive = True``, a fresh calibration cache); Debian's ``chromium`` is driven headlessly
through ``chromium-driver`` (Selenium). The test opens the notebook (which must not open as modified), runs all
cells, types a prompt, clicks Train, sees the bar advance to the end, the state projection calibrated on first use and
the rollout video playing (muted autoplay; after a save and a page reload it is restored and plays again by itself),
then starts a second run, clicks
Cancel and sees it stop with the first run's media cleared. On failure a screenshot, the page's HTML and the server
log go to ``$ANYSKILL_TEST_ARTIFACTS/playground_browser`` (default ``tests/artifacts/``).

Skipped only where ``chromium`` / ``chromedriver`` are not installed (``scripts/system_deps.sh`` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from anyskill.reproduce import list_notebooks

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("ANYSKILL_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "playground_browser"
NOTEBOOK = "10_prompt_playground.ipynb"
PROMPT = "raise both arms"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="chromium and chromedriver are not installed (Debian: apt-get install chromium "
                              "chromium-driver; scripts/system_deps.sh does it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_copy(root: Path) -> Path:
    """Notebook 10 with papermill's injected parameters: smoke scale, widgets only (no run from the parameters), two
    humanoids, two epochs, a 0.4-s rollout, random CLIP weights (the pipeline, not the meaning, is under test)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(list_notebooks(["10"])[0]))  # as papermill reads it (every cell has its tags)
    nb = parameterize_notebook(nb, {"scale": "smoke", "output_root": str(root), "device": "cpu", "seed": 0,
                                    "interactive": True, "clip_weights": "random", "epochs": 2, "num_envs": 2,
                                    "rollout_seconds": 0.4, "reward_source": "projection"})
    path = root / NOTEBOOK
    nbformat.write(nb, path)
    return path


class Lab:
    """A JupyterLab server of this test and a headless chromium on it."""

    def __init__(self, tmp: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.root, self.port, self.token = tmp / "root", _free_port(), os.urandom(12).hex()
        self.root.mkdir()
        self.notebook = _notebook_copy(self.root)
        for d in ("settings", "workspaces", "config", "cache"):
            (tmp / d).mkdir()
        # JupyterLab's news poll off (no network, no toast over the widgets)
        (tmp / "settings" / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
        (tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
               "ANYSKILL_CACHE": str(tmp / "cache"), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
        self.log_path = tmp / "jupyterlab.log"
        self._log = self.log_path.open("w")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
             f"--IdentityProvider.token={self.token}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
             "jupyterlab.NeverCheckForUpdate"],
            cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        self.driver: Any = None
        self._wait_for_server(90)
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                    "--window-size=1400,1200", "--disable-extensions"):
            options.add_argument(arg)
        options.unhandled_prompt_behavior = "accept"  # a "leave page?" prompt on reload
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(120)

    def _wait_for_server(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.server.poll() is not None:
                raise AssertionError(f"JupyterLab exited ({self.server.returncode}):\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"JupyterLab did not answer within {timeout} s:\n{self.log_path.read_text()}")

    def close(self) -> None:
        if self.driver is not None:
            self.driver.quit()
        self.server.terminate()  # jupyter_server shuts its kernels down on SIGTERM
        try:
            self.server.wait(60)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(10)
        self._log.close()

    def keep_artifacts(self, step: str) -> Path:
        """Screenshot, page HTML, server log of a failure at ``step``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = step.replace(" ", "_")
        if self.driver is not None:
            try:
                self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
                (ARTIFACTS / f"{name}.html").write_text(self.driver.page_source)
                (ARTIFACTS / f"{name}.playground.json").write_text(json.dumps(self.playground(), indent=1))
            except Exception as e:  # the browser may be what failed
                (ARTIFACTS / f"{name}.screenshot_failed.txt").write_text(repr(e))
        self._log.flush()
        shutil.copyfile(self.log_path, ARTIFACTS / "jupyterlab.log")
        return ARTIFACTS

    # --- the page

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, what: str, condition: Callable[[], Any], timeout: float, poll: float = 0.25) -> Any:
        """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` s. An error
        shown in a cell's output fails at once."""
        end = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            error = self.cell_error()
            if error:
                raise AssertionError(f"a cell failed while waiting for {what}:\n{error}")
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)

    def cell_error(self) -> str:
        return self.js("""
            for (const o of document.querySelectorAll('.jp-OutputArea-output')) {
              if (o.innerText.includes('Traceback (most recent call last)')) return o.innerText;
            }
            return '';""")

    def menu(self, menu: str, label: str) -> None:
        """Click ``menu`` in the menu bar, then its item ``label``."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][normalize-space()='{menu}']"
                                 ).click()
        item = self.wait(f"menu item {menu} > {label}", lambda: self.driver.find_elements(
            By.XPATH, f"//li[contains(@class,'lm-Menu-item')][div[contains(@class,'lm-Menu-itemLabel')]"
                      f"[normalize-space()='{label}']]"), 10)
        item[0].click()

    def save(self) -> None:
        """The notebook toolbar's save button."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel-toolbar [data-command='docmanager:save']"
                                 ).click()

    def button(self, text: str):
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(
            By.XPATH, f"//button[contains(@class,'widget-button')][normalize-space()='{text}']")
        return found[0] if found else None

    def labelled_input(self, label: str, css: str):
        """The ``css`` input of the widget whose description is ``label``."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(
            By.XPATH, f"//div[contains(@class,'widget-inline-hbox')][label[normalize-space()='{label}']]//{css}")

    def playground(self) -> dict[str, Any]:
        """What a person sees of the playground: the bar, the texts, the buttons, the video."""
        return self.js("""
            const bar = document.querySelector('.widget-hprogress .progress-bar');
            const v = document.querySelector('video.anyskill-rollout');
            const b = t => [...document.querySelectorAll('button.widget-button')].find(x => x.innerText.trim() === t);
            return {
              bar: bar ? parseFloat(bar.style.width || '0') : null,
              bar_class: bar ? bar.className : '',
              texts: [...document.querySelectorAll('.widget-html-content')].map(x => x.innerText).join('\\n'),
              train_disabled: b('Train') ? b('Train').disabled : null,
              cancel_disabled: b('Cancel') ? b('Cancel').disabled : null,
              save_disabled: ['Save policy', 'Save rollout'].map(t => b(t) ? b(t).disabled : null),
              images: document.querySelectorAll('.widget-image').length,
              video: v ? {muted: v.muted, paused: v.paused, loop: v.loop, ready: v.readyState,
                          time: v.currentTime, error: v.error ? v.error.code : null} : null,
            };""")

    def show_video(self) -> bool:
        """Scroll the rollout video into view (Chrome pauses muted autoplay video out of view); False: none yet."""
        return bool(self.js("const v = document.querySelector('video.anyskill-rollout');"
                            "if (v) v.scrollIntoView({block: 'center'}); return !!v;"))

    def dirty(self) -> bool:
        return bool(self.js("return !!document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')"))

    def kernel_idle(self) -> bool:
        return bool(self.js("const e = document.querySelector('.jp-Notebook-ExecutionIndicator');"
                            "return !!e && e.getAttribute('data-status') === 'idle' "
                            "&& document.body.innerText.includes('Python 3 (ipykernel) | Idle');"))

    def open_notebook(self) -> None:
        self.driver.get(f"{self.url}/lab/tree/{NOTEBOOK}?token={self.token}")
        self.wait("the notebook and its kernel", self.kernel_idle, 120)

    def executed(self) -> bool:
        """Some code cell ran or is running ("[1]:", "[*]:")."""
        return bool(self.js("return [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                            ".some(p => /\\[(\\*|\\d+)\\]/.test(p.innerText));"))

    def run_all(self) -> None:
        """Run > Run All Cells; once more when no cell started (a click while JupyterLab was still settling)."""
        for attempt in range(2):
            self.menu("Run", "Run All Cells")
            try:
                self.wait("a cell to start", self.executed, 30)
                return
            except AssertionError:
                if attempt:
                    raise


@pytest.fixture
def lab(tmp_path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def test_playground_in_chromium(lab):
    steps: dict[str, float] = {}
    step, t0 = "open the notebook", time.monotonic()

    def next_step(name: str) -> None:
        nonlocal step, t0
        steps[step] = round(time.monotonic() - t0, 1)
        step, t0 = name, time.monotonic()

    try:
        lab.open_notebook()
        time.sleep(2)  # JupyterLab writes the kernel's metadata into the model once the kernel is up
        import nbformat

        committed = nbformat.read(lab.notebook, as_version=4).metadata["language_info"]["version"]
        if committed == ".".join(map(str, sys.version_info[:3])):  # else JupyterLab rightly updates the version
            assert not lab.dirty(), "the notebook opens as modified (kernelspec / language_info metadata)"

        next_step("run all cells")
        lab.run_all()
        lab.wait("the playground's Train button", lambda: lab.button("Train"), 180)
        first = lab.playground()
        assert first["train_disabled"] is False and first["cancel_disabled"] is True and first["bar"] == 0
        assert first["save_disabled"] == [True, True] and first["video"] is None

        next_step("type a prompt")
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        box = lab.driver.find_element(By.CSS_SELECTOR, ".widget-textarea textarea")
        box.clear()
        box.send_keys(PROMPT)
        box.send_keys(Keys.TAB)  # the Textarea syncs on blur (continuous_update=False)
        lab.wait("the kernel's enhancement preview of the typed prompt",  # 'wave hi' reads as below
                 lambda: "CLIP reads" in (t := lab.playground()["texts"]) and "raised arm bent at the elbow" not in t,
                 30)

        next_step("first run")
        lab.button("Train").click()
        seen: list[float] = []
        said: set[str] = set()

        def finished() -> bool:
            state = lab.playground()
            said.add(state["texts"])
            if state["bar"] is not None and (not seen or state["bar"] != seen[-1]):
                seen.append(state["bar"])
            ended = state["train_disabled"] is False and state["cancel_disabled"] is True  # the thread's last act
            return ended and ("done in" in state["texts"] or "Error" in state["texts"])

        lab.wait("the first run to finish (calibration on first use, 2 epochs, rollout)", finished, 240)
        state = lab.playground()
        assert "done in" in state["texts"], state["texts"]
        assert seen[-1] == 100 and "success" in state["bar_class"], (seen, state)
        assert "RANDOM CLIP WEIGHTS" in state["texts"]
        assert any("calibrat" in t for t in said), said  # the fresh cache: the projection is built on first use
        assert state["train_disabled"] is False and state["cancel_disabled"] is True
        assert state["save_disabled"] == [False, False] and state["images"] >= 1  # the curves
        video = lab.wait("the rollout video to play", lambda: (v := lab.playground()["video"]) and v["error"] is None
                         and not v["paused"] and v["time"] > 0 and v, 30)
        assert video["muted"] and video["loop"], video

        next_step("save and reload")
        lab.save()
        lab.wait("the notebook to be saved", lambda: not lab.dirty(), 30)
        lab.driver.refresh()
        lab.wait("the notebook and its kernel after the reload", lab.kernel_idle, 120)
        # the rollout is back after the reload and plays by itself, muted (the view is rendered detached and then
        # attached, where `autoplay` alone leaves it paused; anyskill.sim.video starts it once loaded)
        video = lab.wait("the rollout video to play again after the reload",  # scrolled to, as a person does
                         lambda: lab.show_video() and (v := lab.playground()["video"]) and v["error"] is None
                         and not v["paused"] and v["time"] > 0 and v, 60)
        assert video["muted"] and video["loop"], video

        next_step("second run, cancelled")
        epochs = lab.labelled_input("Epochs", "input")
        epochs.clear()
        epochs.send_keys("500", Keys.TAB)  # synced on blur, before the click below reaches the kernel
        lab.button("Train").click()
        lab.wait("the new run to clear the first run's video and curves",
                 lambda: (s := lab.playground())["video"] is None and s["images"] == 0 and s["train_disabled"], 30)
        seen.clear()

        def advancing() -> bool:
            bar = lab.playground()["bar"]
            if bar and (not seen or bar > seen[-1]):
                seen.append(bar)
            return len(seen) >= 2

        lab.wait("the bar to advance twice in the second run", advancing, 120, poll=0.1)
        assert seen[-1] < 100, seen
        lab.button("Cancel").click()
        lab.wait("Cancel to be disabled once pressed", lambda: lab.playground()["cancel_disabled"], 10)
        lab.wait("the second run to stop", lambda: "cancelled after epoch" in (s := lab.playground())["texts"]
                 and s["train_disabled"] is False, 60)
        state = lab.playground()
        assert "nothing was rolled out" in state["texts"] and "warning" in state["bar_class"], state
        assert state["bar"] < 100 and state["video"] is None and state["images"] == 0, state
        assert state["save_disabled"] == [True, True] and state["train_disabled"] is False, state
        assert state["cancel_disabled"] is True
        next_step("done")
    except Exception as e:
        where = lab.keep_artifacts(step)
        raise AssertionError(f"step '{step}' failed ({type(e).__name__}: {e}); screenshot, page and server log in "
                             f"{where}; step times so far {steps}") from e
    print(f"browser test step times (s): {steps}")

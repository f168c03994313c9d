"""
Drive Airflow's connection form in headless Chromium and report what it shows, as JSON.

Run by the deployment tier with the deployment's own Python (selenium is installed there, not in
the dev env): ``python browser_form.py <spec.json>``. It opens *Admin -> Connections -> Add
Connection*, picks each connection type in turn, records every field the form shows (name, label,
placeholder, type, help text) with the Standard Fields and then the Extra Fields section open,
screenshots both, then fills and saves one connection without touching its extras.
The assertions are the test's; this script only observes, and writes its report even when a step
fails (with the error, a screenshot and the page source) so the test can say what went wrong.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

# Every input of the dialog with the label, placeholder and help text of its field.
FIELDS_JS = """
const dialog = arguments[0];
const fields = [];
for (const input of dialog.querySelectorAll('input[name], textarea[name]')) {
  const root = input.closest('[data-part=root][role=group]');
  const label = root && root.querySelector('label[data-part=label]');
  const help = root && root.querySelector('[data-part=helper-text]');
  fields.push({
    name: input.name,
    label: label ? label.textContent.replace('*', '').trim() : null,
    placeholder: input.getAttribute('placeholder'),
    type: input.type,
    help: help ? help.textContent.trim() : null,
    visible: !!(root && root.offsetParent),
  });
}
return fields;
"""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1400",
)


class Form:
    def __init__(self, driver: webdriver.Chrome, timeout: float) -> None:
        self.driver = driver
        self.wait = WebDriverWait(driver, timeout)
        self.dialog: WebElement | None = None

    def open_add_dialog(self, base_url: str) -> None:
        self.driver.get(f"{base_url}/connections")
        button = self.wait.until(
            ec.element_to_be_clickable((By.XPATH, "//button[contains(normalize-space(.), 'Add Connection')]"))
        )
        button.click()
        self.dialog = self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]")))

    @property
    def box(self) -> WebElement:
        assert self.dialog is not None, "the Add Connection dialog is not open"
        return self.dialog

    def choose_type(self, hook_name: str) -> None:
        """Pick a connection type in the react-select combobox by its display name."""
        combo = self.box.find_element(By.CSS_SELECTOR, "input[role=combobox]")
        combo.send_keys(hook_name)
        self.wait.until(
            lambda d: any(o.text == hook_name for o in d.find_elements(By.CSS_SELECTOR, "[role=option]"))
        )
        combo.send_keys(Keys.ENTER)
        self.wait.until(lambda d: self.box.find_elements(By.NAME, "host"))

    def open_section(self, title: str, probe_field: str) -> None:
        """Open an accordion section (one is open at a time) and wait until ``probe_field`` shows."""
        trigger = self.box.find_element(
            By.XPATH, f".//button[@data-part='item-trigger'][normalize-space(.)='{title}']"
        )
        if trigger.get_attribute("aria-expanded") != "true":
            trigger.click()
        self.wait.until(lambda d: self.box.find_element(By.NAME, probe_field).is_displayed())
        # The accordion animates its height; wait until it stops changing before a screenshot.
        previous: list[int] = []

        def settled(_: Any) -> bool:
            previous.append(int(self.box.size["height"]))
            return len(previous) > 2 and previous[-1] == previous[-2] == previous[-3]

        self.wait.until(settled)

    def fields(self) -> list[dict[str, Any]]:
        return list(self.driver.execute_script(FIELDS_JS, self.box))

    def screenshot(self, path: Path) -> str:
        # No focus ring or blinking caret in the pictures.
        self.driver.execute_script("document.activeElement && document.activeElement.blur()")
        self.box.screenshot(str(path))
        return str(path)

    def fill(self, name: str, value: str) -> None:
        element = self.box.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)

    def save(self) -> None:
        button = self.box.find_element(By.XPATH, ".//footer//button[normalize-space(.)='Save']")
        self.wait.until(lambda d: button.is_enabled())
        button.click()
        self.wait.until(ec.invisibility_of_element(self.box))


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"forms": {}, "saved": None, "error": None}
    options = webdriver.ChromeOptions()
    options.binary_location = spec["chromium"]
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={out / 'chrome-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(spec["chromedriver"]), options=options)
    driver.set_page_load_timeout(spec["timeout"])
    form = Form(driver, spec["timeout"])
    try:
        form.open_add_dialog(spec["base_url"])
        for conn_type, hook_name, default_conn_id in spec["types"]:
            form.choose_type(hook_name)
            form.fill("connection_id", default_conn_id)  # as a user would, for the screenshots
            form.open_section("Standard Fields", "host")
            standard = form.fields()
            standard_png = form.screenshot(out / f"connection-form-{conn_type}.png")
            form.open_section("Extra Fields", f"element_{spec['probe_extra']}")
            extra = form.fields()
            extra_png = form.screenshot(out / f"connection-form-{conn_type}-extras.png")
            report["forms"][conn_type] = {
                "standard": [f for f in standard if f["visible"]],
                "extra": [f for f in extra if f["visible"] and f["name"].startswith("element_")],
                "screenshots": [standard_png, extra_png],
            }
        save = spec["save"]
        form.choose_type(save["hook_name"])
        form.open_section("Standard Fields", "host")
        form.fill("connection_id", save["conn_id"])
        form.fill("host", save["host"])
        form.fill("password", save["password"])
        form.save()
        report["saved"] = save["conn_id"]
    except Exception:
        report["error"] = traceback.format_exc()
        driver.save_screenshot(str(out / "failure.png"))
        (out / "failure.html").write_text(driver.page_source, encoding="utf-8")
    finally:
        driver.quit()
        (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

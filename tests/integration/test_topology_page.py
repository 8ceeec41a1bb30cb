"""The router's topology page in a real browser: headless Chromium driven by Selenium.

Uses Debian's chromedriver (`.ci/run` installs `chromium` and `chromium-driver`); Selenium's
own driver download does not work offline. Without the driver the test skips, except under CI
(CI=true), where it fails. A screenshot is saved in the test's temp folder (and, when
MISHARDS_SCREENSHOT is set, also at that path: docs/images/topology.png is made so).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from conftest import require_installed
from pymilvus import MilvusClient

from mishards.cli.cluster import Cluster

CHROMEDRIVER = "/usr/bin/chromedriver"


def require_driver(path: str, env: Mapping[str, str]) -> None:
    require_installed(path, "install Debian's chromium and chromium-driver", env)


def test_a_missing_driver_fails_under_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    missing = str(tmp_path / "chromedriver")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_driver(missing, {"CI": "true"})
    with pytest.raises(pytest.skip.Exception, match="chromium-driver"):
        require_driver(missing, {})
    with pytest.raises(pytest.skip.Exception):
        require_driver(missing, {"CI": "false"})
    require_driver(str(tmp_path), {"CI": "true"})  # present: nothing happens


@pytest.fixture
def browser() -> Iterator[object]:
    require_driver(CHROMEDRIVER, os.environ)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    if os.path.exists("/usr/bin/chromium"):
        options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_shows_instances_and_where_each_shard_lives(
    cluster: Cluster, router: MilvusClient, name: str, browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    router.create_collection(name, dimension=4, consistency_level="Strong")
    try:  # an error the page lists under "Recent errors"
        router.describe_collection("missing_" + name)
    except Exception:
        pass
    driver = browser
    driver.get(f"http://127.0.0.1:{cluster.ports['router_metrics']}/")  # type: ignore[attr-defined]
    wait = WebDriverWait(driver, 20)
    rows = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'tr.shard[data-collection="{name}"]') or False  # type: ignore[attr-defined]
    )
    assert sorted(int(r.get_attribute("data-shard")) for r in rows) == [0, 1]
    cards = driver.find_elements(By.CSS_SELECTOR, ".card.instance")  # type: ignore[attr-defined]
    identities = {c.get_attribute("data-identity") for c in cards}
    assert {i.address for i in cluster.writable_instances} <= identities
    assert all("healthy" in c.get_attribute("class") for c in cards)
    placed = " ".join(r.text for r in rows)
    assert "primary" in placed and "ready" in placed
    # Each shard's copy lives on one of the cluster's instances, shown by identity.
    assert any(i.address in placed for i in cluster.writable_instances)
    wait.until(lambda d: "missing_" + name in d.find_element(By.ID, "errors").text)  # type: ignore[attr-defined]
    shot = tmp_path / "topology.png"
    assert driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000
    if os.environ.get("MISHARDS_SCREENSHOT"):
        shutil.copy(shot, os.environ["MISHARDS_SCREENSHOT"])

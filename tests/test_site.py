"""The bilingual static site that ``bash scripts/site`` builds into ``site/``.

Every page has its twin in the other language and a link to it, says its language, links only to
what the site holds, fetches nothing from elsewhere, shows math as MathML and plots inline, and
has every Chinese character it uses in the font it ships. A real headless Chromium opens one
English and one Chinese page offline: no console error, no request leaving the machine, the math
laid out, the plot drawn, the Chinese font loaded; a screenshot of each is kept in
``site/screenshots/``.

These tests read a built site: they skip when there is none, unless UDPLAB_SITE_REQUIRED=1 (as
scripts/check sets it right after building the site), where a missing site or browser fails.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from conftest import CHROMEDRIVER, CHROMIUM, headless_chromium, requested_urls

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
REQUIRED = os.environ.get("UDPLAB_SITE_REQUIRED") == "1"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
#: (English page, Chinese page) for each pair of sources.
PAIRS = [("index.html", "zh/index.html"), ("notebooks/index.html", "zh/notebooks/index.html")] + [
    (f"notebooks/{name}.html", f"zh/notebooks/{name}.html") for name in NOTEBOOKS
]
#: The pages opened in Chromium: math, a plot, code and Chinese on one page.
BROWSED = ("notebooks/06_network_not_ideal.html", "zh/notebooks/06_network_not_ideal.html")
HAN = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def need(thing: object, why: str) -> None:
    if not thing:
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)


def module(name: str) -> Any:
    """The module, or a skip (a failure where the site is required) saying how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        need(False, f"{name} is missing: pip install -e '.[test,site]'")


@pytest.fixture(scope="module")
def pages() -> dict[str, Any]:
    """Every HTML page of the site, parsed: {path in the site: soup}."""
    need((SITE / "index.html").exists(), "site/ is not built: bash scripts/site")
    bs4 = module("bs4")
    return {
        p.relative_to(SITE).as_posix(): bs4.BeautifulSoup(p.read_text(encoding="utf-8"),
                                                          "html.parser")
        for p in SITE.rglob("*.html")
    }


def test_every_page_has_its_twin_and_a_link_to_it(pages: dict[str, Any]) -> None:
    assert len(PAIRS) == 2 + len(NOTEBOOKS) and NOTEBOOKS
    for en, zh in PAIRS:
        for page, twin, lang, label in ((en, zh, "en", "中文"), (zh, en, "zh-CN", "English")):
            assert page in pages, f"site/{page} is missing"
            soup = pages[page]
            assert soup.html.get("lang") == lang, f"site/{page}: <html lang> is not {lang!r}"
            link = soup.select_one("nav.site a.twin")
            assert link is not None and link.get_text(strip=True) == label, (
                f"site/{page}: no {label!r} link in its bar")
            target = resolve(page, link["href"])
            assert target == SITE / twin, f"site/{page} links to {link['href']}, not its twin"


def resolve(page: str, href: str) -> Path:
    return (SITE / page).parent.joinpath(unquote(urlsplit(href).path)).resolve()


def test_every_local_link_resolves(pages: dict[str, Any]) -> None:
    broken = []
    for page, soup in pages.items():
        for tag, attribute in (("a", "href"), ("img", "src"), ("link", "href"),
                               ("script", "src")):
            for element in soup.find_all(tag):
                value = element.get(attribute)
                if not value or urlsplit(value).scheme in ("http", "https", "mailto", "data"):
                    continue
                parts = urlsplit(value)
                target = resolve(page, value) if parts.path else SITE / page
                if not target.is_file():
                    broken.append(f"site/{page}: {value} (no such file)")
                    continue
                fragment = unquote(parts.fragment)
                if fragment and target.suffix == ".html":
                    anchors = pages[target.relative_to(SITE).as_posix()]
                    if anchors.find(id=fragment) is None:
                        broken.append(f"site/{page}: {value} (no id {fragment!r} there)")
    assert not broken, "\n".join(broken)


def test_nothing_is_fetched_from_elsewhere(pages: dict[str, Any]) -> None:
    remote = re.compile(r"^\s*(https?:)?//")
    for page, soup in pages.items():
        for tag, attribute in (("script", "src"), ("link", "href"), ("img", "src"),
                               ("iframe", "src"), ("source", "src"), ("video", "src")):
            for element in soup.find_all(tag):
                assert not remote.match(element.get(attribute) or ""), f"site/{page}: {element}"
        for style in soup.find_all("style"):
            assert not re.search(r"(url\(|@import)\s*['\"]?(https?:)?//", style.get_text()), page


def test_math_is_mathml_and_plots_are_inline(pages: dict[str, Any]) -> None:
    for page in BROWSED:
        soup = pages[page]
        assert soup.find("math", attrs={"display": "block"}), f"site/{page}: no MathML"
        assert "$$" not in soup.get_text(), f"site/{page}: math left as $$...$$"
        images = [img["src"] for img in soup.find_all("img")]
        inline = ("data:image/png;base64,", "data:image/svg+xml;base64,")
        assert images and all(src.startswith(inline) for src in images), page


def test_every_chinese_character_is_in_the_shipped_font(pages: dict[str, Any]) -> None:
    ttlib = module("fontTools.ttLib")
    cmap = ttlib.TTFont(SITE / "assets" / "udplab-sans-sc.otf").getBestCmap()
    used = {c for page, soup in pages.items() if page.startswith("zh/")
            for c in HAN.findall(soup.get_text())}
    assert len(used) > 300, "hardly any Chinese on the Chinese pages?"
    missing = sorted(c for c in used if ord(c) not in cmap)
    assert not missing, f"not in site/assets/udplab-sans-sc.otf: {''.join(missing)}"


@pytest.mark.timeout(120)
def test_pages_render_offline_in_chromium(pages: dict[str, Any]) -> None:
    need(CHROMIUM and CHROMEDRIVER,
         "needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    module("selenium.webdriver")
    driver = headless_chromium(1280, 900)
    try:
        # Anything that would leave the machine is refused, and still recorded below.
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs",
                               {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
        shots = SITE / "screenshots"
        shots.mkdir(exist_ok=True)
        for page_path in BROWSED:
            check_in_browser(driver, page_path, shots)
    finally:
        driver.quit()


def check_in_browser(driver: Any, page_path: str, shots: Path) -> None:
    driver.get((SITE / page_path).as_uri())
    state = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        document.fonts.load('16px "udplab Sans SC"', '误判超时').then(loaded => {
            const math = document.querySelector('math[display="block"]');
            const images = [...document.images];
            done({
                lang: document.documentElement.lang,
                mathHeight: math ? math.getBoundingClientRect().height : 0,
                images: images.length,
                drawn: images.filter(i => i.complete && i.naturalWidth > 0).length,
                cjkFont: loaded.length,
            });
        });
    """)
    name = page_path.replace("/", "-").removesuffix(".html")
    driver.save_screenshot(str(shots / f"{name}.png"))
    # and the heartbeat section, with its formula and its plot
    driver.execute_script(
        "document.querySelector('math[display=\"block\"]').scrollIntoView({block: 'start'});"
        "window.scrollBy(0, -200);")
    driver.save_screenshot(str(shots / f"{name}-math.png"))
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE",
                                                                                 "WARNING")]
    requested = requested_urls(driver)
    assert any(url.endswith(page_path) for url in requested), "the request log recorded nothing"
    elsewhere = sorted(url for url in requested if not url.startswith(("file://", "data:")))
    assert not elsewhere, f"site/{page_path} asked for: {elsewhere}"
    assert not problems, f"site/{page_path}: " + "\n".join(problems)
    assert state["mathHeight"] > 10, f"site/{page_path}: the math is not laid out: {state}"
    assert state["images"] and state["drawn"] == state["images"], f"site/{page_path}: {state}"
    assert state["cjkFont"] >= 1, f"site/{page_path}: the Chinese font did not load: {state}"

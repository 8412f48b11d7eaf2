"""The Chinese of the ``udplab`` command and demo: the message catalog in step with the code,
every message translated with its fields, the shipped ``.mo`` the ``.po`` compiled, and the
language chosen by the locale or ``UDPLAB_LANG`` as a learner sets it."""

from __future__ import annotations

import gettext
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from udplab import _i18n
from udplab._i18n import columns, wrap

ROOT = Path(__file__).resolve().parent.parent
PO = _i18n.LOCALE_DIR / "zh" / "LC_MESSAGES" / "udplab.po"
MO = PO.with_suffix(".mo")


def i18n_script() -> Any:
    spec = importlib.util.spec_from_file_location("i18n_script", ROOT / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def po() -> Any:
    with PO.open("rb") as f:
        return read_po(f, locale="zh")


def test_the_catalog_holds_exactly_the_marked_texts_of_the_code() -> None:
    marked = {m.id for m in i18n_script().extracted() if m.id}
    catalog = {m.id for m in po() if m.id}
    assert marked - catalog == set(), "new texts: run python scripts/i18n.py and translate them"
    assert catalog - marked == set(), "texts no longer in the code: run python scripts/i18n.py"


FIELDS = re.compile(r"\{[^{}]*\}|%(?:\([a-z_]+\))?[-#0 +]*\d*(?:\.\d+)?[a-z%]")


def fields(text: str) -> list[str]:
    """``{name}``, ``{text!r}``, ``%s``, ``%(name)s``, ``%.1f``: what ``format`` or ``%`` fill."""
    return sorted(FIELDS.findall(text))


def test_every_message_has_a_translation_with_the_same_fields() -> None:
    messages = [m for m in po() if m.id]
    assert len(messages) > 100
    for m in messages:
        assert not m.fuzzy, m.id
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for text in strings:
            assert text.strip(), f"no translation of {m.id!r}"
            assert fields(text) == fields(ids[0]), (m.id, text)
            # %-formatted texts keep their fields in order: positional ones cannot move.
            if "%" in ids[0] and "%(" not in ids[0]:
                assert FIELDS.findall(text) == FIELDS.findall(ids[0]), (m.id, text)
    # Each placeholder pattern is really found: the check above could not pass on nothing.
    assert fields("got {n!r} in %.1f s from %(who)s, %s") == [
        "%(who)s", "%.1f", "%s", "{n!r}"]


def test_the_shipped_mo_is_the_po_compiled() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, po())
    compiled.seek(0)
    with MO.open("rb") as f:
        shipped = gettext.GNUTranslations(f)
    expected = gettext.GNUTranslations(compiled)
    assert shipped._catalog == expected._catalog  # type: ignore[attr-defined]
    assert shipped.gettext("usage: ") == "用法："


LANGUAGE_VARIABLES = ("UDPLAB_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def udplab_help(**variables: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in LANGUAGE_VARIABLES}
    done = subprocess.run([sys.executable, "-m", "udplab", "server", "--help"],
                          env={**env, **variables}, capture_output=True, text=True,
                          encoding="utf-8", timeout=60, check=True)
    return done.stdout


@pytest.mark.parametrize("variables", [
    {"LANG": "zh_CN.UTF-8"}, {"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"},
    {"LANGUAGE": "zh_CN:en"}, {"UDPLAB_LANG": "zh", "LANG": "en_US.UTF-8"},
])
def test_a_chinese_locale_or_udplab_lang_gets_chinese_help(variables: dict[str, str]) -> None:
    text = udplab_help(**variables)
    assert text.startswith("用法：python -m udplab server"), text
    assert "运行笔记里的群聊服务器（ChatS）" in text and "显示这段帮助并退出" in text, text


@pytest.mark.parametrize("variables", [
    {}, {"LANG": "C.UTF-8"}, {"LANG": "fr_FR.UTF-8"}, {"UDPLAB_LANG": "en", "LANG": "zh_CN.UTF-8"},
])
def test_any_other_locale_gets_english_help(variables: dict[str, str]) -> None:
    text = udplab_help(**variables)
    assert text.startswith("usage: python -m udplab server"), text
    assert "Run the notes' group chat server (ChatS)" in text


def test_the_language_follows_the_environment_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LANGUAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert _i18n.language() == "zh" and _i18n._("nothing") == "无"
    monkeypatch.setenv("UDPLAB_LANG", "en")
    assert _i18n.language() == "en" and _i18n._("nothing") == "nothing"


def test_chinese_help_wraps_by_terminal_columns() -> None:
    text = ("运行笔记里的群聊服务器（ChatS）：客户端发来的每条消息都转发给每个在线的客户端；"
            "沉默 INVAL 秒的客户端被移除。")
    lines = wrap(text, 30)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # nothing lost
    assert len(lines) > 2 and all(columns(line) <= 30 for line in lines), lines
    assert not any(line[0] in "，。；：）" for line in lines), lines
    assert wrap("a few words here", 9) == ["a few", "words", "here"]


def test_the_demo_narrates_in_chinese_and_the_core_logs_in_english() -> None:
    env = {k: v for k, v in os.environ.items() if k not in LANGUAGE_VARIABLES}
    done = subprocess.run([sys.executable, "-m", "udplab", "demo", "--inval", "0.5"],
                          env={**env, "UDPLAB_LANG": "zh"}, capture_output=True, text=True,
                          encoding="utf-8", timeout=60)
    assert done.returncode == 0, done.stderr
    log = done.stderr
    for narration in ("-- 第 1-2 节：UDP 服务器和客户端 --", "carol 停止心跳，不再出声", "bob 离开",
                      "服务器统计："):
        assert narration in log, (narration, log)
    assert re.search(r" chat client alice \(127\.0\.0\.1:\d+\) talks to ", log), log


def test_the_link_status_line_in_chinese_fits_by_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from udplab.cli import status_line

    monkeypatch.setenv("UDPLAB_LANG", "zh")
    counts = {"received": 30, "forwarded": 20, "lost": 10, "duplicated": 0, "reordered": 0}
    stats = {"up": counts, "down": dict(counts, lost=0, received=20)}
    assert status_line(stats) == ("上行：收 30 发 20 丢 10 重复 0 乱序 0 | "
                                  "下行：收 20 发 20 丢 0 重复 0 乱序 0")
    assert status_line(stats, 50) == "上行：收 30 发 20 丢 10 | 下行：收 20 发 20"  # 44 columns
    cut = status_line(stats, 30)
    assert cut.endswith("…") and columns(cut) <= 30 and cut.startswith("上行：收 30")


LINK_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"loss": 1.5}, "0 到 1 之间的概率"),
    ({"delay": (0.0, -1)}, "0 到 86400 秒（一天）"),
    ({"idle": 0}, "大于 0 且不超过 86400 秒（一天）"),
    ({"spin": 2}, "0 到 1 秒"),
    ({"rate": 0.5}, "每秒至少 1 字节"),
    ({"limit": 0}, "不小于 1 的整数"),
    ({"seed": -1}, "0 到 18446744073709551615 之间的整数"),
    ({"reorder": (0.1, 0.0), "delay": (0.0, 1.0)}, "reorder（上行） 需要设置 delay"),
    ({"target": ("127.0.0.1", 0)}, "的端口是 0"),
    ({"target": ("127.0.0.1", 40999), "listen": ("0.0.0.0", 40999)}, "就是这条链路自己的地址"),
]


@pytest.mark.parametrize(("options", "chinese"), LINK_REFUSALS)
def test_a_link_refusal_reads_as_the_core_says_it_in_english_and_in_chinese(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], chinese: str
) -> None:
    """``udplab link`` words the core's refusal from its parts: in English exactly the core's
    message (so the two stay in step), in Chinese with the same values."""
    from udplab import Link
    from udplab.cli import _refusal

    options = dict(options)
    target = options.pop("target", ("127.0.0.1", 9))
    with pytest.raises(ValueError) as refused:
        Link(target, **options)
    for name in LANGUAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UDPLAB_LANG", "en")
    assert _refusal(refused.value) == str(refused.value)
    monkeypatch.setenv("UDPLAB_LANG", "zh")
    assert chinese in _refusal(refused.value), _refusal(refused.value)

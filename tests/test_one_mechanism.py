"""One mechanism for each job: Jinja environments, MJML, HMAC and translations have one home."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from newsletter.render import i18n
from subscribers.mailer import PREHEADERS, SUBJECTS
from subscribers.tokens import PrekeyedHmac

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "newsletter" / "render" / "environment.py"


def _calls(name: str) -> list[str]:
    """Where a function called `name` is called, outside its one home."""
    found = []
    for package in ("newsletter", "subscribers"):
        for path in (ROOT / package).rglob("*.py"):
            if path == HOME:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = (
                        func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    )
                    if called == name:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("name", ["Environment", "mjml2html"])
def test_environments_and_mjml_are_built_in_one_place(name: str) -> None:
    assert _calls(name) == []


@pytest.mark.parametrize("key", [b"k", b"k" * 64, b"k" * 65, b"secret-key-0123456789abcdef"])
def test_the_prekeyed_hmac_is_hmac(key: bytes) -> None:
    fast = PrekeyedHmac(key)
    for message in (b"", b"1f.2", b"x" * 200):
        expected = hmac.new(key, message, hashlib.sha256).digest()
        assert fast.digest(message) == expected
        as_text = base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
        assert fast.urlsafe_signature(message.decode("ascii")) == as_text


def test_keyed_messages_come_from_the_catalog_in_both_languages() -> None:
    web = i18n.keyed_messages("web")
    assert web["unsubscribe_title"] == {"en": "Unsubscribe", "ja": "配信停止"}
    assert web["unsubscribe_button"] == {"en": "Unsubscribe", "ja": "配信を停止する"}
    assert all(set(texts) == {"ja", "en"} and all(texts.values()) for texts in web.values())
    assert set(i18n.keyed_messages("mail")) == {
        "confirm_subject",
        "confirm_subject_short",
        "confirm_preheader",
    }


def test_the_confirmation_wording_is_unchanged() -> None:
    assert SUBJECTS == {
        "ja": "【{name}】ご登録の確認をお願いします",
        "en": "{name}: please confirm your subscription",
        "both": "【{name}】ご登録の確認 / Please confirm your subscription",
    }
    assert (
        PREHEADERS["both"] == "ボタンを押すと登録が完了します。 One click and you are subscribed."
    )


def test_an_unknown_area_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="msgctxt 'nowhere:"):
        i18n.keyed_messages("nowhere")

"""Page language: the subscriber's preference when known, else the browser's Accept-Language.

Every string a page shows is here, in both languages, so a page can never be half-translated.
"""

from __future__ import annotations

from collections.abc import Callable

PAGE_LANGUAGES = ("ja", "en")

# Version of the consent wording shown on the sign-up form; recorded with each sign-up. Change
# it whenever the wording below ("consent") changes.
CONSENT_WORDING_VERSION = "signup-2026-06-v1"

MESSAGES: dict[str, dict[str, str]] = {
    "switch_language": {"ja": "English", "en": "日本語"},
    "invalid_link_title": {"ja": "リンクが無効です", "en": "This link is not valid"},
    "invalid_link_body": {
        "ja": "リンクが正しくないか、期限が切れています。メールのリンクをもう一度お試しください。",
        "en": "The link is incomplete or has expired. Please use the link in your email again.",
    },
    "not_found_title": {"ja": "ページが見つかりません", "en": "Page not found"},
    "error_title": {"ja": "エラーが発生しました", "en": "Something went wrong"},
    "error_body": {
        "ja": "時間をおいてもう一度お試しください。",
        "en": "Please try again in a little while.",
    },
    "unsubscribe_title": {"ja": "配信停止", "en": "Unsubscribe"},
    "unsubscribe_question": {
        "ja": "「{list}」の配信を停止しますか？",
        "en": "Stop receiving “{list}”?",
    },
    "unsubscribe_address": {"ja": "対象のアドレス: {email}", "en": "Address: {email}"},
    "unsubscribe_button": {"ja": "配信を停止する", "en": "Unsubscribe"},
    "unsubscribed_title": {"ja": "配信を停止しました", "en": "You are unsubscribed"},
    "unsubscribed_body": {
        "ja": "「{list}」はもう届きません。ご購読ありがとうございました。",
        "en": "You will no longer receive “{list}”. Thank you for reading.",
    },
    "preferences_link": {"ja": "配信設定を変更する", "en": "Change your preferences"},
    "preferences_title": {"ja": "配信設定", "en": "Email preferences"},
    "language_label": {"ja": "受け取る言語", "en": "Language of the newsletter"},
    "lang_ja": {"ja": "日本語", "en": "Japanese"},
    "lang_en": {"ja": "英語", "en": "English"},
    "lang_both": {"ja": "日本語と英語", "en": "Japanese and English"},
    "lists_label": {"ja": "購読するニュースレター", "en": "Newsletters"},
    "save_button": {"ja": "保存する", "en": "Save"},
    "saved": {"ja": "設定を保存しました。", "en": "Your preferences are saved."},
    "form_expired": {
        "ja": "フォームの有効期限が切れました。もう一度お試しください。",
        "en": "This form has expired. Please try again.",
    },
    "subscribe_title": {"ja": "購読する", "en": "Subscribe"},
    "subscribe_intro": {
        "ja": "毎朝、AIの重要ニュースを日本語と英語でお届けします。",
        "en": "The day's important AI news, every morning, in Japanese and English.",
    },
    "email_label": {"ja": "メールアドレス", "en": "Email address"},
    "name_label": {"ja": "お名前（任意）", "en": "Name (optional)"},
    "consent": {
        "ja": "ニュースレターの受信に同意します。各メールのリンクからいつでも配信を停止できます。",
        "en": "I agree to receive this newsletter. I can unsubscribe at any time "
        "with the link in every email.",
    },
    "consent_required": {
        "ja": "購読には同意が必要です。",
        "en": "Please confirm that you agree to receive the newsletter.",
    },
    "email_invalid": {
        "ja": "メールアドレスを確認してください。",
        "en": "Please check the email address.",
    },
    "subscribe_button": {"ja": "購読する", "en": "Subscribe"},
    "check_inbox_title": {"ja": "メールをご確認ください", "en": "Check your inbox"},
    "check_inbox_body": {
        "ja": "確認メールを送りました。メール内のリンクを開くと購読が完了します。",
        "en": "We sent you a confirmation email. Open the link in it to complete your "
        "subscription.",
    },
    "too_many_title": {"ja": "しばらくお待ちください", "en": "Please wait a moment"},
    "too_many_body": {
        "ja": "短時間にリクエストが多すぎます。少し待ってからもう一度お試しください。",
        "en": "Too many requests in a short time. Please try again shortly.",
    },
    "confirm_title": {"ja": "購読の確認", "en": "Confirm your subscription"},
    "confirm_button": {"ja": "購読を確定する", "en": "Confirm subscription"},
    "confirmed_title": {"ja": "購読が完了しました", "en": "You are subscribed"},
    "confirmed_body": {
        "ja": "明朝から配信します。ご登録ありがとうございます。",
        "en": "Your first issue arrives tomorrow morning. Thank you for subscribing.",
    },
    "archive_title": {"ja": "バックナンバー", "en": "Archive"},
    "archive_empty": {"ja": "まだ配信はありません。", "en": "No issues have been sent yet."},
    "variant_ja": {"ja": "日本語版", "en": "Japanese"},
    "variant_en": {"ja": "英語版", "en": "English"},
    "variant_both": {"ja": "日英併記版", "en": "Bilingual"},
    "preview_title": {"ja": "プレビュー", "en": "Preview"},
    "phone": {"ja": "スマートフォン (375px)", "en": "Phone (375 px)"},
    "desktop": {"ja": "デスクトップ (600px)", "en": "Desktop (600 px)"},
    "stats_title": {"ja": "配信統計", "en": "Issue statistics"},
    "stats_events_over_time": {"ja": "時間ごとのイベント", "en": "Events over time"},
    "stats_no_events": {"ja": "イベントはまだありません。", "en": "No events yet."},
    "stats_ledger": {"ja": "配信台帳", "en": "Send ledger"},
    "metric_delivered": {"ja": "配信済み", "en": "Delivered"},
    "metric_bounced": {"ja": "バウンス", "en": "Bounced"},
    "metric_opened": {"ja": "開封", "en": "Opened"},
    "metric_clicked": {"ja": "クリック", "en": "Clicked"},
    "metric_unsubscribed": {"ja": "配信停止", "en": "Unsubscribed"},
    "metric_complained": {"ja": "迷惑メール報告", "en": "Complained"},
    "unauthorized": {
        "ja": "このページを見るにはプレビュー用トークンが必要です。",
        "en": "This page needs the preview token.",
    },
}


def pick_language(
    accept_language: str | None, preference: str | None = None, override: str | None = None
) -> str:
    """`override` (?hl=) wins, then a one-language preference, then the browser's best match."""
    if override in PAGE_LANGUAGES:
        return override  # type: ignore[return-value]
    if preference in PAGE_LANGUAGES:
        return preference  # type: ignore[return-value]
    best, best_q = "ja", -1.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in PAGE_LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= position * 1e-6  # earlier wins on a tie
        if q > best_q and q > 0:
            best, best_q = primary, q
    return best


def translator(language: str) -> Callable[..., str]:
    """`t(key, **values)` for one language; a missing key is a bug and raises KeyError."""

    def t(key: str, **values: object) -> str:
        text = MESSAGES[key][language]
        return text.format(**values) if values else text

    return t

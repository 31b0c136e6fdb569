"""The link-signing key: created once under a race, private, long; weak keys stop every command."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import MIN_SECRET_KEY_CHARS, load_settings
from newsletter.errors import SecretKeyError

BAD_KEY_FILES = {
    "empty": b"",
    "ten characters": b"0123456789\n",
    "binary": b"\xff\xfe\x00\x81" * 16,
}
COMMANDS = {
    "demo": ["demo"],
    "issue send": ["issue", "send", "1"],
    "serve": ["serve", "--port", "1"],
}


def _env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'newsletter.db'}",
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_SECRET_KEY": None,
        "NEWSLETTER_CONFIG": None,
    }


@pytest.mark.parametrize("content", BAD_KEY_FILES.values(), ids=BAD_KEY_FILES.keys())
@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_weak_key_file_stops_the_command_with_one_line_and_exit_78(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "var" / "secret.key"
    key_file.parent.mkdir()
    key_file.write_bytes(content)
    result = CliRunner().invoke(cli, command, env=_env(tmp_path))
    assert result.exit_code == 78, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert str(key_file) in lines[0] and f"at least {MIN_SECRET_KEY_CHARS}" in lines[0]
    assert key_file.read_bytes() == content  # refused, never replaced behind the operator's back


def test_a_created_key_file_is_private_and_long(tmp_path: Path) -> None:
    settings = load_settings({"NEWSLETTER_VAR_DIR": str(tmp_path / "var")})
    key_file = tmp_path / "var" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(settings.secret_key.reveal()) >= 64  # token_urlsafe(48): 384 random bits
    assert key_file.read_text(encoding="utf-8").strip() == settings.secret_key.reveal()
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left behind


def test_a_key_from_the_environment_needs_32_characters() -> None:
    with pytest.raises(SecretKeyError, match="^NEWSLETTER_SECRET_KEY: key 2 has 31 characters"):
        load_settings({"NEWSLETTER_SECRET_KEY": "k" * 40 + "," + "o" * 31})
    keys = load_settings({"NEWSLETTER_SECRET_KEY": "k" * 32}).secret_keys
    assert [k.reveal() for k in keys] == ["k" * 32]


def _race(root: str, trials: int, barrier: Any, results: Any) -> None:
    """One of the racing processes: per trial, wait for all, then load the key of var<trial>."""
    for trial in range(trials):
        barrier.wait(timeout=20)  # all eight start loading together, on an empty directory
        try:
            key = load_settings({"NEWSLETTER_VAR_DIR": f"{root}/var{trial}"}).secret_key.reveal()
        except Exception as err:  # reported to the parent, which fails the test
            key = f"error: {err!r}"
        results.put((trial, key))


def test_eight_processes_racing_on_an_empty_var_all_get_the_same_key(tmp_path: Path) -> None:
    trials, racers = 50, 8
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(racers), context.Queue()
    processes = [
        context.Process(target=_race, args=(str(tmp_path), trials, barrier, results))
        for _ in range(racers)
    ]
    for process in processes:
        process.start()
    keys: dict[int, set[str]] = {trial: set() for trial in range(trials)}
    try:
        for _ in range(trials * racers):
            trial, key = results.get(timeout=30)
            keys[trial].add(key)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    for trial, found in keys.items():
        assert len(found) == 1, f"trial {trial}: {len(found)} different keys {found}"
        (key,) = found
        assert not key.startswith("error") and len(key) >= MIN_SECRET_KEY_CHARS, key
        var_dir = tmp_path / f"var{trial}"
        assert (var_dir / "secret.key").read_text(encoding="utf-8").strip() == key
        assert [p.name for p in var_dir.iterdir()] == ["secret.key"]


def test_health_reports_a_weak_key_as_failing_and_a_missing_one_as_degraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = _env(tmp_path)
    missing = CliRunner().invoke(cli, ["health", "--json"], env=env)
    check = next(c for c in json.loads(missing.stdout)["checks"] if c["name"] == "secret key")
    assert check["status"] == "degraded" and "does not exist" in check["detail"]
    assert not (tmp_path / "var" / "secret.key").exists()  # health never creates one

    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret.key").write_text("short-key\n", encoding="utf-8")
    weak = CliRunner().invoke(cli, ["health", "--json"], env=env)
    check = next(c for c in json.loads(weak.stdout)["checks"] if c["name"] == "secret key")
    assert weak.exit_code == 2
    assert check["status"] == "failing" and "9 characters" in check["detail"]

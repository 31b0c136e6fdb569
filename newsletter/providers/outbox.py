"""The outbox provider: every message as an `.eml` file, for development, review and archives.

Each recipient's message is the exact bytes SMTP would send (`newsletter.providers.mime`),
written to `<outbox_dir>/issue-<id>/<delivery id>-<masked address>.eml` (transactional mail
goes to `transactional/`). A file is written to a temporary name in the same folder and renamed
into place, so a reader never sees half a message. File names never hold a full address.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

from newsletter.errors import PermanentProviderError, TransientProviderError
from newsletter.providers.base import Batch, BatchResult, PreparedMessage, Recipient
from newsletter.providers.dkim_sign import DkimSigner
from newsletter.providers.mime import address_problem, template_for
from newsletter.providers.redact import masked_filename_part


class OutboxProvider:
    """Writes one `.eml` per recipient. Thread-safe: files never collide, folders are idempotent."""

    name = "outbox"
    max_batch_size = 1000
    confirms_by_events = False

    def __init__(self, directory: Path, signer: DkimSigner | None = None) -> None:
        self.directory = Path(directory)
        self.signer = signer  # DKIM: files carry the signature SMTP would send

    def folder_for(self, message: PreparedMessage) -> Path:
        if message.issue_id is None:
            return self.directory / "transactional"
        return self.directory / f"issue-{message.issue_id}"

    def path_for(self, message: PreparedMessage, recipient: Recipient) -> Path:
        """Where the recipient's message goes; transactional files get a unique time-based name."""
        stem = f"{recipient.delivery_id}-{masked_filename_part(recipient.email)}"
        if message.issue_id is None or recipient.delivery_id == 0:
            stem = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}-{stem}"
        return self.folder_for(message) / f"{stem}.eml"

    def send_batch(self, batch: Batch) -> BatchResult:
        template = template_for(batch.message)
        folder = self.folder_for(batch.message)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TransientProviderError(f"outbox: cannot create {folder}: {err}") from err
        result = BatchResult()
        for recipient in batch.recipients:
            problem = address_problem(recipient.email)
            if problem:
                result.failed[recipient.delivery_id] = problem
                continue
            path = self.path_for(batch.message, recipient)
            data = template.render(recipient)
            if self.signer is not None:
                try:
                    data = self.signer.sign(data)
                except PermanentProviderError as err:
                    result.failed[recipient.delivery_id] = str(err)
                    continue
            try:
                write_atomically(path, data)
            except OSError as err:
                raise TransientProviderError(f"outbox: cannot write {path}: {err}") from err
            result.accepted.append(recipient.delivery_id)
        return result

    def preflight(self) -> None:
        """Nothing to check: a folder that cannot be written fails the first batch, retryably."""

    def close(self) -> None:
        """Nothing to release."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file next to `path`, then rename it over `path` (atomic on POSIX)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".eml", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Addresses as errors and file names may show them: enough to recognise, never the full address.

The masking rule itself is `newsletter.logs` (one rule for logs, errors and files); this adds
the file-name form the outbox uses.
"""

from __future__ import annotations

import re

from newsletter.logs import mask_email, mask_text

__all__ = ["mask_email", "masked_filename_part", "redact_text"]

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._@+-]")


def masked_filename_part(email: str) -> str:
    """The masked address with anything a file system may dislike replaced by `_`."""
    return _UNSAFE_FILENAME.sub("_", mask_email(email))[:80]


def redact_text(text: str) -> str:
    """`text` with every address in it masked (provider replies often echo the address)."""
    return mask_text(text)

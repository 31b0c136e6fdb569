"""Moved to `newsletter.issues.variants` (storage is not rendering); this name stays only for
`newsletter/delivery/sending.py`, which imports it, until the sending core imports the new one.
"""

from __future__ import annotations

from newsletter.issues.variants import as_rendered, ensure_variants, is_current

__all__ = ["as_rendered", "ensure_variants", "is_current"]

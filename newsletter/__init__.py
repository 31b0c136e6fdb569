"""AI日報 Newsletter: a bilingual daily digest, from article files to subscribers' inboxes."""

__version__ = "0.1.0"

"""Subscriber management: lists, consent, import/export, unsubscribe and suppression."""

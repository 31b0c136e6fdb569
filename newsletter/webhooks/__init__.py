"""Provider webhooks: verify a request, parse it into `ProviderEvent`s, record them idempotently.

`sendgrid` is pure (no database); `recording` applies events to the ledger, the suppression
list and the subscriptions; `stats` reads per-issue statistics back from the stored events.
"""

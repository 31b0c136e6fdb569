"""The sending core: plan an issue into a ledger of batches, claim, send, record.

Imports no concrete provider, no web and no CLI (see docs/architecture.md).
"""

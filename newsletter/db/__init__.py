"""Persistence: models, engines and sessions, migrations."""

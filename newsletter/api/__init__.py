"""The HTTP API (/api/v1/), its reference page and the Prometheus metrics endpoint."""

from newsletter.api.app import create_api

__all__ = ["create_api"]

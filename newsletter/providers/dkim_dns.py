"""Is the DKIM key we sign with the one receivers will find in DNS?

A signature checked against a different (or missing, or revoked) public key fails DKIM, and
with it DMARC alignment: Gmail and Yahoo then treat bulk mail as unauthenticated. `newsletter
health` asks DNS for `<selector>._domainkey.<domain>` (dnspython, the system's resolvers) and
compares its `p=` with the public half of NEWSLETTER_DKIM_PRIVATE_KEY.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import serialization

PUBLISHED = "published"  # the record's key is ours
MISMATCH = "mismatch"  # a record, with another key
REVOKED = "revoked"  # a record with an empty p=
MISSING = "missing"  # no record at that name
UNREACHABLE = "unreachable"  # DNS did not answer: nothing known


@dataclass(frozen=True, slots=True)
class DkimDnsResult:
    state: str
    name: str
    detail: str


def public_key_value(private_pem: bytes) -> str:
    """The `p=` value to publish for this private key (base64 of the SubjectPublicKeyInfo)."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def record_tags(record: str) -> dict[str, str]:
    """`v=DKIM1; k=rsa; p=MIIB...` as tags (RFC 6376 3.6.1: whitespace inside values is ignored)."""
    tags: dict[str, str] = {}
    for item in record.split(";"):
        name, sep, value = item.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def check_published(
    private_pem: bytes,
    selector: str,
    domain: str,
    *,
    resolver: dns.resolver.Resolver | None = None,
    timeout_s: float = 3.0,
) -> DkimDnsResult:
    name = f"{selector}._domainkey.{domain}"
    active = resolver or dns.resolver.Resolver()
    try:
        answer = active.resolve(name, "TXT", lifetime=timeout_s)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return DkimDnsResult(MISSING, name, f"no TXT record at {name}: publish the public key")
    except (dns.exception.Timeout, dns.resolver.NoNameservers, OSError) as err:
        return DkimDnsResult(UNREACHABLE, name, f"could not ask DNS for {name}: {err}")
    records = ["".join(part.decode("ascii", "replace") for part in r.strings) for r in answer]
    keys = [record_tags(r) for r in records if "p" in record_tags(r)]
    if not keys:
        return DkimDnsResult(MISSING, name, f"the TXT record at {name} holds no DKIM key (p=)")
    ours = public_key_value(private_pem)
    if any(tags["p"] == ours for tags in keys):
        return DkimDnsResult(PUBLISHED, name, f"{name} publishes the signing key")
    if all(tags["p"] == "" for tags in keys):
        return DkimDnsResult(REVOKED, name, f"{name} publishes an empty p=: the key is revoked")
    return DkimDnsResult(
        MISMATCH,
        name,
        f"{name} publishes another key than NEWSLETTER_DKIM_PRIVATE_KEY: every signature "
        "fails DKIM; publish this key (newsletter health --json shows its p= value)",
    )

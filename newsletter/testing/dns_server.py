"""A small authoritative DNS server on UDP for tests: TXT records from a dict.

Real DNS messages over a real socket (dnspython builds and parses them), so the code under
test uses its ordinary resolver pointed at 127.0.0.1. Names it does not hold are NXDOMAIN;
`silent=True` answers nothing at all (a DNS outage, for the "could not ask" path).
"""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset


class TxtDnsServer:
    def __init__(self, records: dict[str, list[str]], *, silent: bool = False) -> None:
        self.records = {name.rstrip(".").lower(): values for name, values in records.items()}
        self.silent = silent
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="txt-dns", daemon=True)

    def __enter__(self) -> TxtDnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def resolver(self) -> dns.resolver.Resolver:
        """A resolver that asks only this server."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        return resolver

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            if self.silent:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            values = self.records.get(name)
            if values is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT:
                # Long values split into 255-byte strings, as zone files publish DKIM keys.
                texts = [
                    " ".join('"' + value[i : i + 255] + '"' for i in range(0, len(value), 255))
                    for value in values
                ]
                response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "TXT", *texts))
            self._sock.sendto(response.to_wire(), peer)

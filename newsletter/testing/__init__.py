"""Real local stand-ins used by the tests and the benchmarks: a SendGrid-compatible HTTP
server, an SMTP sink with error injection, an in-memory provider."""

"""Email providers: the protocol in `base`, one module per service, chosen by `factory`."""

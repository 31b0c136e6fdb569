"""Who may do what, and what they did: roles, accounts, API tokens and the audit log."""

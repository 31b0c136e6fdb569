"""The `newsletter` command: thin click commands over functions the tests call directly."""

"""Command-line interface: ``wander <subcommand>``; each subcommand is a thin wrapper over the API."""

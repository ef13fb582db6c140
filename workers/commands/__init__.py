"""Subcommands of the `seatflow` command line, one module each."""

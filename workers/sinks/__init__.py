"""Sinks apply read-model mutations; each owns its transaction and its applied positions."""

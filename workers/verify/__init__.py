"""Checking read models: canonical snapshots, a reference fold of the topics, comparison."""

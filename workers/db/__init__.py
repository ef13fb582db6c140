"""The read-model database: its schema migrations (`workers.db.migrate`)."""

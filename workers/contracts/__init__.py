"""The event schemas and the topic catalog, inside the package.

`schemas/` and `topics/` stay at the top of the repository, where people look for them;
`workers/contracts/schemas` and `workers/contracts/topics` are symbolic links to them, so
that a built wheel carries copies of both (setuptools copies what the links point to) and
an installed seatflow finds them without `SEATFLOW_SCHEMAS_DIR` / `SEATFLOW_TOPICS_DIR`.
In a source checkout the links lead to the repository's own directories: one default for
both cases.
"""

from __future__ import annotations

from pathlib import Path

CONTRACTS_DIR = Path(__file__).parent
SCHEMAS_DIR = CONTRACTS_DIR / "schemas"
TOPICS_DIR = CONTRACTS_DIR / "topics"

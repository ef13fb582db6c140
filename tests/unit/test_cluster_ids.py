"""KRaft cluster ids for the brokers the tests and scripts/services format."""

from __future__ import annotations

import string
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.integration.private_kafka import new_cluster_id

ROOT = Path(__file__).resolve().parents[2]


def test_an_id_that_would_read_as_an_option_is_drawn_again() -> None:
    draws: Iterator[bytes] = iter([b"\xf8" + bytes(15), bytes(16)])  # "-A...", then "AAA..."
    cluster_id = new_cluster_id(lambda n: next(draws))
    assert cluster_id == "A" * 22


def test_ids_are_22_url_safe_characters_and_never_start_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert set("".join(ids)) <= set(string.ascii_letters + string.digits + "-_")


def test_the_services_script_draws_again_too() -> None:
    """scripts/services formats the shared broker once per machine: the same 1-in-64
    failure, on a fresh CI machine."""
    text = (ROOT / "scripts" / "services").read_text()
    assert "while [[ $cluster_id == -* ]]" in text
    start = text.index("local cluster_id=-")
    end = text.index("done\n", start) + len("done\n")
    script = text[start:end].replace("local ", "") + 'printf %s "$cluster_id"'
    for _ in range(20):
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
        assert len(out.stdout) == 22 and not out.stdout.startswith("-")

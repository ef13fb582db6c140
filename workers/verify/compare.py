"""Comparing two read-model copies: counts and content hashes, then the first differences.

A copy is a `Snapshot` (tables and hashes, normalised, `projected_at` left out), from a
store (live, shadow, old) or from the reference fold of the topics. Per PostgreSQL table
and per Redis key family (seat, seatmap, availability) the comparison reports the number
of rows / keys and a SHA-256 of the canonical content, so two large copies can be told
equal or not at a glance, and `Snapshot.differences` gives the first differing keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from workers.verify.snapshot import PG_TABLES, Snapshot

FAMILIES = ("seat", "seatmap", "availability")


def canonical(value: Any) -> str:
    """One spelling per value whatever the store: times in UTC ISO, money normalised."""
    if value is None:
        return "~"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, tuple | list):
        return "(" + ",".join(canonical(v) for v in value) + ")"
    return repr(str(value)) if not isinstance(value, int | bool) else str(value)


def _hash(lines: list[str]) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Part:
    """One table or key family of a copy."""

    count: int
    sha256: str


@dataclass(slots=True)
class Digest:
    tables: dict[str, Part] = field(default_factory=dict)
    families: dict[str, Part] = field(default_factory=dict)


def digest(snap: Snapshot, *, postgres: bool = True, redis: bool = True) -> Digest:
    out = Digest()
    if postgres:
        for table in PG_TABLES:
            rows = snap.tables.get(table, {})
            out.tables[table] = Part(
                len(rows), _hash([f"{canonical(k)}={canonical(v)}" for k, v in rows.items()])
            )
    if redis:
        grouped: dict[str, list[str]] = {family: [] for family in FAMILIES}
        for key, fields in snap.hashes.items():
            family = key.split(":", 1)[0]
            body = ",".join(f"{f}={v}" for f, v in sorted(fields.items()))
            grouped.setdefault(family, []).append(f"{key}:{body}")
        out.families = {family: Part(len(keys), _hash(keys)) for family, keys in grouped.items()}
    return out


@dataclass(slots=True)
class Comparison:
    left: str
    right: str
    left_digest: Digest
    right_digest: Digest
    differences: list[str]

    @property
    def equal(self) -> bool:
        return not self.differences and self.left_digest == self.right_digest

    def doc(self) -> dict[str, Any]:
        def parts(a: Mapping[str, Part], b: Mapping[str, Part]) -> dict[str, Any]:
            return {
                name: {
                    "left": {"count": a[name].count, "sha256": a[name].sha256},
                    "right": {"count": b[name].count, "sha256": b[name].sha256},
                    "equal": a[name] == b[name],
                }
                for name in a
            }

        return {
            "left": self.left,
            "right": self.right,
            "equal": self.equal,
            "tables": parts(self.left_digest.tables, self.right_digest.tables),
            "redis": parts(self.left_digest.families, self.right_digest.families),
            "differences": self.differences,
        }

    def lines(self) -> list[str]:
        out = [f"verify: {self.left} vs {self.right}"]
        for title, a, b in (
            ("table", self.left_digest.tables, self.right_digest.tables),
            ("redis", self.left_digest.families, self.right_digest.families),
        ):
            for name in a:
                same = "equal" if a[name] == b[name] else "DIFFERENT"
                out.append(
                    f"  {title} {name:<18} {a[name].count:>10,} {a[name].sha256[:12]}  "
                    f"{b[name].count:>10,} {b[name].sha256[:12]}  {same}"
                )
        if self.differences:
            out.append(f"  first differences ({self.left} != {self.right}):")
            out += [f"    {line}" for line in self.differences]
        out.append("  equal" if self.equal else "  DIFFERENT")
        return out


def compare(
    left: Snapshot,
    right: Snapshot,
    *,
    names: tuple[str, str] = ("left", "right"),
    postgres: bool = True,
    redis: bool = True,
    limit: int = 20,
) -> Comparison:
    """Compare the selected stores of two snapshots."""
    a, b = (
        restrict(left, postgres=postgres, redis=redis),
        restrict(right, postgres=postgres, redis=redis),
    )
    return Comparison(
        names[0],
        names[1],
        digest(a, postgres=postgres, redis=redis),
        digest(b, postgres=postgres, redis=redis),
        a.differences(b, limit=limit),
    )


def restrict(snap: Snapshot, *, postgres: bool, redis: bool) -> Snapshot:
    """Only the stores being compared (the others left empty on both sides)."""
    return Snapshot(
        tables=snap.tables if postgres else {t: {} for t in PG_TABLES},
        hashes=snap.hashes if redis else {},
    )

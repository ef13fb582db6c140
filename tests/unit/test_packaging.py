"""The built wheel carries the event schemas and the topic catalog: an installed seatflow
decodes and resolves topics with neither SEATFLOW_SCHEMAS_DIR nor SEATFLOW_TOPICS_DIR set,
and outside any source checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import json
from workers.decoding import load_validators, schemas_dir
from workers.settings import Settings
from workers.topic_catalog import catalog_path, load_catalog
catalog = load_catalog(Settings())
print(json.dumps({"schemas": str(schemas_dir()), "validators": len(load_validators()),
                  "catalog": str(catalog_path()), "sources": len(list(catalog.sources()))}))
"""


def test_an_installed_wheel_finds_its_schemas_and_topic_catalog(tmp_path: Path) -> None:
    # Built from a clean copy: pip builds in the tree, and a checkout's build/ may hold
    # files of an earlier build.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("workers", "schemas", "topics"):
        shutil.copytree(
            REPO / name, source / name, symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("seatflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    repo_files = [
        *(f"workers/contracts/schemas/{p.relative_to(REPO / 'schemas')}"
          for p in (REPO / "schemas").glob("*/*.json")),
        "workers/contracts/topics/catalog.toml",
    ]  # fmt: skip
    assert len(repo_files) > 5
    assert not [f for f in repo_files if f not in names]

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATFLOW_")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the checkout
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=tmp_path, env=env,
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    found = json.loads(out.strip().splitlines()[-1])
    assert found["schemas"].startswith(str(site)) and found["catalog"].startswith(str(site))
    assert not Path(found["schemas"]).is_symlink()
    assert found["validators"] == 7 and found["sources"] == 4

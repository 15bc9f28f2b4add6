"""The front door and the manual: a short README, a plugin reference that lists every plugin, no reference
to a file outside the repository, and a site that builds strictly."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from benchmark.registry import REGISTRIES, load_builtin_plugins
from benchmark.tools.manual import pages
from conftest import ROOT

README_MAX_LINES = 260


def test_readme_is_short_and_complete():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "MEASURE:" not in text, "a figure of the README is still a placeholder: measure it with its command"
    for needed in ("## Install", "## Quickstart", "## Commands", "python -m pytest", "docs/"):
        assert needed in text


def test_generated_pages_are_current():
    stale = [p.name for p, text in pages().items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"stale: {stale}; run python -m benchmark.tools.manual"


def test_plugin_reference_lists_every_plugin_and_parameter():
    load_builtin_plugins()
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for family, registry in REGISTRIES.items():
        for name in registry.names():
            if not registry.get(name).__module__.startswith("benchmark."):
                continue  # a third-party entry point installed here
            assert f"### `{name}` {{#{family}-{name}}}" in text, (family, name)
            section = text.split(f"{{#{family}-{name}}}", 1)[1].split("\n### ", 1)[0]
            for p in registry.describe(name)["params"]:
                assert f"| `{p['name']}` |" in section, (family, name, p["name"])


def test_nothing_cites_a_file_outside_the_repository():
    offenders = []
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    for folder in ("benchmark", "examples", "docs"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".toml", ".j2", ".txt"}]
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, line in enumerate(text.splitlines(), 1):
            if "formulas.md" in line or re.search(r"(\.\./)+shared\b|\bshared/(docs|models|data)\b", line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="needs mkdocs (pip install -e '.[docs]')")
def test_site_builds_strictly(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "plugins" / "index.html").is_file()

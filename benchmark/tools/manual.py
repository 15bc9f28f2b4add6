"""Write the generated pages of the manual: ``python -m benchmark.tools.manual [--check]``.

``docs/plugins.md``, the plugin reference, from the registries: every built-in attack, defense, metric and
dataset with its summary, its declared capabilities, its parameters with types and defaults, and the rest of
its docstring (paper, defaults of the reference code, ranges). ``--check`` compares with the file instead of
writing it and exits 1 when it is stale, so CI fails when a plugin changes and the page does not. Plugins of
installed third-party packages (entry points) are left out: the page documents this package.

``docs/contributing.md``, the contributor guide ``CONTRIBUTING.md`` of the repository's root as a page of the
site (its links into ``docs/`` made relative to the page). It needs a source checkout, not an installed copy.
"""
from __future__ import annotations

import argparse
import inspect
import logging
import re
import sys
from pathlib import Path

from ..registry import REGISTRIES, load_builtin_plugins, value_text

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# The capabilities each family's base class declares, in the order the page shows them.
CAPABILITIES = {
    "attacks": ("threat_model", "budget_unit", "strength_param", "needs_gradient", "needs_fit"),
    "defenses": ("stochastic", "differentiable", "baseline", "wraps_metric", "changes_geometry"),
    "metrics": ("lower_better", "score_range", "differentiable", "mode"),
    "datasets": ("mos_lower_better", "mos_range"),
}
TITLES = {"attacks": "Attacks", "defenses": "Defenses", "metrics": "Metrics", "datasets": "Datasets"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _capabilities(family: str, cls: type) -> str:
    """The capabilities ``cls`` declares, as class attributes of its own or of its family's base class (which
    declares every one of :data:`CAPABILITIES` with its default). A capability the base class derives per
    instance (a property: an attack's ``budget_unit`` follows its ``threat_model`` unless declared) is left out."""
    parts = []
    for name in CAPABILITIES[family]:
        value = inspect.getattr_static(cls, name)  # the declaration itself: a property stays a property
        if isinstance(value, property):
            continue
        parts.append(f"`{name} = {value_text(value)}`")
    return ", ".join(parts)


def _plugin_section(family: str, name: str, cls: type) -> list[str]:
    doc = inspect.getdoc(cls) or ""
    summary, _, rest = doc.partition("\n")
    lines = [f"### `{name}` {{#{family}-{name}}}", "", summary.strip() or "(no docstring)", ""]
    caps = _capabilities(family, cls)
    if caps:
        lines += [f"Capabilities: {caps}.", ""]
    params = REGISTRIES[family].describe(name)["params"]
    if params:
        lines += ["| parameter | type | default |", "| --- | --- | --- |"]
        for p in params:
            lines.append(f"| `{p['name']}` | {_cell(p['type'])} | `{_cell(p['default_text'])}` |")
        lines.append("")
    else:
        lines += ["No parameters.", ""]
    rest = inspect.cleandoc(rest) if rest.strip() else ""
    if rest:
        lines += ["```text", *rest.splitlines(), "```", ""]
    lines.append(f"Source: `{cls.__module__.replace('.', '/')}.py`")
    lines.append("")
    return lines


def render() -> str:
    """The whole page, deterministic for a given code base."""
    load_builtin_plugins()
    out = ["# Plugin reference", "",
           "Generated from the registries by `python -m benchmark.tools.manual`; do not edit by hand "
           "(CI fails when this page is stale). `python -m benchmark list` shows the same on the command line, "
           "with plugins of installed packages and local plugin files too. Every `[[family]]` table of a "
           "matrix also takes `name`, `label` and `optional`; attack tables take `adaptive` and `eot_samples` "
           "(see [the matrix reference](matrix.md)). How each measure is defined: [measures](measures.md).", ""]
    for family, registry in REGISTRIES.items():
        names = [n for n in registry.names() if registry.get(n).__module__.startswith("benchmark.")]
        out += [f"## {TITLES[family]}", "", " · ".join(f"[`{n}`](#{family}-{n})" for n in names), ""]
        for n in names:
            out += _plugin_section(family, n, registry.get(n))
    return "\n".join(out).rstrip() + "\n"


def contributing_page(root: Path = ROOT) -> str:
    """``CONTRIBUTING.md`` as a page of the site: links to ``docs/x.md`` become ``x.md``, other repository
    files are shown as code (the site has no copy of them)."""
    source = root / "CONTRIBUTING.md"
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: the manual is generated from a source checkout")
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", text)
    text = re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)", r"\1 (`\2`)", text)  # repository files
    head = "<!-- generated from CONTRIBUTING.md by python -m benchmark.tools.manual; edit that file -->\n"
    return head + text


def pages(root: Path = ROOT) -> dict[Path, str]:
    """Every generated page of the manual, by path."""
    return {root / "docs" / "plugins.md": render(), root / "docs" / "contributing.md": contributing_page(root)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a page differs from what would be written")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stale = []
    for path, text in pages().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.write_text(text, encoding="utf-8")
            log.info("wrote %s", path)
    for path in stale:
        log.error("%s is stale: run python -m benchmark.tools.manual", path)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

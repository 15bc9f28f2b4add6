"""A self-contained HTML page per run (no CDN; opens from ``file://``), rendered by jinja2 from stored records."""
from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2
import pandas as pd

from ..store import RunStore, atomic_write_text
from .certificates import certificate_panels
from .tables import HEADLINE

COLUMN_TITLES = {
    "n_images": "n", "abs_gain": "abs. gain ↑atk", "msu_abs_gain": "MSU norm. gain", "robust_abs_gain":
    "robust gain ↓", "both_defended_abs_gain": "both-defended gain", "psnr_def_adv": "PSNR(x, D(x'))",
    "ssim_def_adv": "SSIM(x, D(x'))", "purified_quality": "purified quality ↑", "srocc_clean": "SROCC(m, s)",
    "srocc_def_clean": "SROCC(m, s_D)", "srocc_def_adv": "SROCC(m, s'_D)", "plcc_clean": "PLCC(m, s)",
    "plcc_def_clean": "PLCC(m, s_D)", "seconds_def_adv": "defense s/img", "adaptive_attack": "adaptive",
    "cert_width": "certified width", "cert_delta_norm": "cert. δ / r", "abstain_rate": "abstain",
}


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def tradeoff_points(summary: pd.DataFrame) -> list[dict]:
    """(robust gain, purified quality) per cell for the trade-off plot, scaled to a 0..1 box."""
    if summary.empty or "purified_quality" not in summary:
        return []
    g, q = summary["robust_abs_gain"].astype(float), summary["purified_quality"].astype(float)
    gmax, qmin, qmax = max(g.max(), 1e-9), q.min(), q.max()
    qspan = (qmax - qmin) or 1.0
    return [{"x": float(gi / gmax), "y": float((qi - qmin) / qspan), "gain": float(gi), "quality": float(qi),
             "label": f"{r.metric} / {r.attack} / {r.defense}"}
            for gi, qi, r in zip(g, q, summary.itertuples())]


def template_env() -> jinja2.Environment:
    """The report templates shipped in the package (run report and leaderboard share base and macros)."""
    return jinja2.Environment(loader=jinja2.PackageLoader("benchmark.reports", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]))


def render_html(run_dir: Path, summary: pd.DataFrame, records: pd.DataFrame | None = None) -> Path:
    run_dir = Path(run_dir)
    env = template_env()
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    store = RunStore(run_dir)
    skipped_path = run_dir / "skipped.json"
    cols = [c for c in HEADLINE if c in summary]
    rows = [[_fmt(v) for v in row] for row in summary[cols].itertuples(index=False)] if len(summary) else []
    adaptive = set(summary.loc[summary["adaptive_attack"].astype(bool), "defense"]) if len(summary) else set()
    non_adaptive = sorted(set(summary["defense"]) - adaptive - {"identity"}) if len(summary) else []
    html = env.get_template("report.html.j2").render(
        title=manifest.get("name", run_dir.name), columns=[COLUMN_TITLES.get(c, c) for c in cols], rows=rows,
        non_adaptive=non_adaptive, errors=[{k: e.get(k) for k in ("stage", "dataset", "metric", "attack", "defense",
                                                                 "error")} for e in store.errors()],
        skipped=json.loads(skipped_path.read_text()) if skipped_path.is_file() else [],
        points=tradeoff_points(summary), cert_panels=certificate_panels(records), manifest=manifest,
        manifest_json=json.dumps({k: manifest.get(k) for k in ("run", "versions", "git_commit", "device",
                                                               "device_name", "platform", "written")}, indent=1),
    )
    out = run_dir / "report.html"
    atomic_write_text(out, html)
    return out

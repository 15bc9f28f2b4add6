"""Certified-interval panels of the HTML report: for every cell of a certified (smoothing) defense, each image's
certified interval ``[y_(q_l), y_(q_u)]`` of the clean image (docs/measures.md#certified-defenses), its smoothed clean score
``s_D`` and the smoothed score of the attacked image ``s'_D``, which the certificate guarantees to lie inside
the interval only when the attack's L2 norm is at most the certified radius. Geometry is computed here, the
template draws plain SVG (no plotting library, so the page stays self-contained and small)."""
from __future__ import annotations

import math

import pandas as pd

from ..measures import CELL

WIDTH, HEIGHT, LEFT, TOP = 560, 150, 50, 10  # plot box in SVG pixels


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def certificate_panels(records: pd.DataFrame | None, max_images: int = 80) -> list[dict]:
    """One panel per certified cell: images sorted by smoothed clean score, at most ``max_images`` of them
    (evenly spaced through that order), with SVG coordinates for interval, clean and attacked scores."""
    need = {"cert_lo_clean", "cert_hi_clean", "score_def", "score_adv_def"}
    if records is None or records.empty or not need <= set(records):
        return []
    panels = []
    certified = records[records["cert_lo_clean"].notna()]
    for key, g in certified.groupby(CELL, sort=False):
        g = g.sort_values("score_def")
        if len(g) > max_images:
            step = len(g) / max_images
            g = g.iloc[[int(i * step) for i in range(max_images)]]
        vals = [v for c in ("cert_lo_clean", "cert_hi_clean", "score_def", "score_adv_def") for v in g[c]
                if _finite(v)]
        if not vals:
            continue
        lo, hi = min(vals), max(vals)
        span = (hi - lo) or 1.0

        def y(v: float) -> float | None:
            return TOP + HEIGHT * (1 - (v - lo) / span) if _finite(v) else None

        dx = WIDTH / len(g)
        marks = []
        for i, r in enumerate(g.itertuples()):
            inside = _finite(r.score_adv_def) and r.cert_lo_clean <= r.score_adv_def <= r.cert_hi_clean
            marks.append({"x": LEFT + dx * (i + 0.5), "y_lo": y(r.cert_lo_clean), "y_hi": y(r.cert_hi_clean),
                          "y_clean": y(r.score_def), "y_adv": y(r.score_adv_def), "inside": bool(inside),
                          "title": f"{r.image_id}: interval [{r.cert_lo_clean:.4g}, {r.cert_hi_clean:.4g}], "
                                   f"s_D {r.score_def:.4g}, s'_D {r.score_adv_def:.4g}"})
        panels.append({"label": " / ".join(str(k) for k in key), "key": tuple(key), "marks": marks, "lo": lo, "hi": hi,
                       "n": len(marks), "n_inside": sum(m["inside"] for m in marks),
                       "box": {"x": LEFT, "y": TOP, "w": WIDTH, "h": HEIGHT}})
    return panels

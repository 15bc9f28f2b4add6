"""Geometry of the report's plots, computed here and drawn as plain inline SVG by the templates (no plotting
library, no script): the trade-off scatter (robust gain vs purified quality, a colour per defense, a marker
per attack, the Pareto front labelled), gain-vs-budget curves and the attack × defense heatmap colours.
Every function returns numbers and strings only; the templates escape every label."""
from __future__ import annotations

import math

import numpy as np

from ..registry import number_text

# Colour-blind-safe palettes: Okabe & Ito (2008), without black and yellow (too light on white), then Paul Tol's
# "muted" scheme (personal.sron.nl/~pault), without its grey. A defense's colour is chosen from its label alone
# (sha256), so it is the same in every report and leaderboard, whatever else the page shows.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7",
           "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499"]
BASELINE_COLOUR = "#555555"
MARKERS = ["circle", "square", "triangle", "diamond", "triangle-down", "plus", "cross", "star"]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    ticks, t = [], start
    while t <= hi + step * 0.5 + 1e-12 and len(ticks) < 20:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def fmt_tick(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


BUDGET_TEXTS: dict = {}   # (type, value, sign) -> fmt_budget's text: a page writes the same few budgets many times


def fmt_budget(v: float) -> str:
    """A budget as k/255 where it is one, else 3 significant digits (each distinct value worked out once)."""
    if not math.isfinite(v):
        return "–"
    key = (type(v), v, math.copysign(1.0, v))
    text = BUDGET_TEXTS.get(key)
    if text is None:
        if len(BUDGET_TEXTS) > 4096:
            BUDGET_TEXTS.clear()
        text = BUDGET_TEXTS[key] = budget_text(v)
    return text


def budget_text(v: float) -> str:
    """:func:`fmt_budget` of a finite value, worked out."""
    text = number_text(v)  # the labels' form: 3/255, 0.05
    return text if "/" in text or len(text) <= 6 else f"{v:.3g}"


def marker_path(kind: str, cx: float, cy: float, r: float = 5.0) -> str:
    """SVG path data of a marker centred at (cx, cy)."""
    if kind == "circle":
        return (f"M{cx - r:.1f},{cy:.1f}a{r:.1f},{r:.1f} 0 1,0 {2 * r:.1f},0"
                f"a{r:.1f},{r:.1f} 0 1,0 {-2 * r:.1f},0Z")
    if kind == "square":
        s = r * 0.9
        return f"M{cx - s:.1f},{cy - s:.1f}h{2 * s:.1f}v{2 * s:.1f}h{-2 * s:.1f}Z"
    if kind == "triangle":
        return f"M{cx:.1f},{cy - r * 1.1:.1f}L{cx + r:.1f},{cy + r * 0.8:.1f}L{cx - r:.1f},{cy + r * 0.8:.1f}Z"
    if kind == "triangle-down":
        return f"M{cx:.1f},{cy + r * 1.1:.1f}L{cx + r:.1f},{cy - r * 0.8:.1f}L{cx - r:.1f},{cy - r * 0.8:.1f}Z"
    if kind == "diamond":
        return f"M{cx:.1f},{cy - r * 1.2:.1f}L{cx + r:.1f},{cy:.1f}L{cx:.1f},{cy + r * 1.2:.1f}L{cx - r:.1f},{cy:.1f}Z"
    if kind == "plus":
        w = r * 0.35
        return (f"M{cx - w:.1f},{cy - r:.1f}h{2 * w:.1f}v{r - w:.1f}h{r - w:.1f}v{2 * w:.1f}h{-(r - w):.1f}"
                f"v{r - w:.1f}h{-2 * w:.1f}v{-(r - w):.1f}h{-(r - w):.1f}v{-2 * w:.1f}h{r - w:.1f}Z")
    if kind == "cross":
        a = r * 0.8
        return (f"M{cx - a:.1f},{cy - a:.1f}L{cx + a:.1f},{cy + a:.1f}"
                f"M{cx - a:.1f},{cy + a:.1f}L{cx + a:.1f},{cy - a:.1f}")
    pts = []  # star
    for k in range(10):
        ang = -math.pi / 2 + k * math.pi / 5
        rr = r * 1.2 if k % 2 == 0 else r * 0.5
        pts.append(f"{cx + rr * math.cos(ang):.1f},{cy + rr * math.sin(ang):.1f}")
    return "M" + "L".join(pts) + "Z"


class Axes:
    """A plot box with linear x and y scales and their ticks."""

    def __init__(self, xlo: float, xhi: float, ylo: float, yhi: float, *, width: int = 560, height: int = 300,
                 left: int = 62, top: int = 12, bottom: int = 44, right: int = 12, xticks=None):
        self.xt = xticks if xticks is not None else nice_ticks(xlo, xhi)
        self.yt = nice_ticks(ylo, yhi)
        self.x0, self.x1 = min(self.xt[0], xlo), max(self.xt[-1], xhi)
        self.y0, self.y1 = min(self.yt[0], ylo), max(self.yt[-1], yhi)
        self.left, self.top, self.w, self.h = left, top, width - left - right, height - top - bottom
        self.width, self.height = width, height

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + self.w * (v - self.x0) / span

    def y(self, v: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.top + self.h * (1 - (v - self.y0) / span)

    def frame(self, xlabel: str, ylabel: str, xfmt=fmt_tick) -> dict:
        return {"width": self.width, "height": self.height,
                "box": {"x": self.left, "y": self.top, "w": self.w, "h": self.h},
                "xticks": [{"p": round(self.x(t), 1), "label": xfmt(t)} for t in self.xt if self.x0 <= t <= self.x1],
                "yticks": [{"p": round(self.y(t), 1), "label": fmt_tick(t)} for t in self.yt
                           if self.y0 <= t <= self.y1],
                "xlabel": xlabel, "ylabel": ylabel,
                "xlabel_at": (self.left + self.w / 2, self.height - 6), "ylabel_at": (14, self.top + self.h / 2)}


def label_colour(label: str) -> str:
    """The colour of a defense label: a fixed function of the label (sha256 into :data:`PALETTE`)."""
    import hashlib

    return PALETTE[int.from_bytes(hashlib.sha256(str(label).encode()).digest()[:8], "big") % len(PALETTE)]


def colour_map(labels: list[str], baselines: set[str]) -> dict[str, str]:
    """A colour per defense label (baselines grey), from the label alone: stable across runs and pages. Two
    labels may share a colour; the legends and tables name them."""
    return {lab: BASELINE_COLOUR if lab in baselines else label_colour(lab) for lab in dict.fromkeys(labels)}


def marker_map(labels: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for lab in labels:
        out.setdefault(lab, MARKERS[len(out) % len(MARKERS)])
    return out


def pareto_2d(gain: np.ndarray, quality: np.ndarray) -> list[int]:
    """Indices of the points no other point beats on both (gain lower, quality higher), by gain."""
    idx = [i for i in range(len(gain)) if math.isfinite(gain[i]) and math.isfinite(quality[i])]
    front = [i for i in idx if not any(gain[j] <= gain[i] and quality[j] >= quality[i]
                                       and (gain[j] < gain[i] or quality[j] > quality[i]) for j in idx)]
    return sorted(front, key=lambda i: (gain[i], -quality[i]))


def tradeoff(points: list[dict], colours: dict[str, str], markers: dict[str, str], *, xlabel: str,
             ylabel: str, width: int = 640, height: int = 380) -> dict | None:
    """Scatter of ``points`` (dicts with gain, quality, defense, attack, and optional anchor/title) with the
    2-D Pareto front (gain ↓, quality ↑) drawn as a dashed step line and its points labelled."""
    pts = [p for p in points if math.isfinite(p["gain"]) and math.isfinite(p["quality"])]
    if not pts:
        return None
    g = np.array([p["gain"] for p in pts])
    q = np.array([p["quality"] for p in pts])
    ext_g = [v for p in pts for v in (p.get("gain_ci") or ()) if math.isfinite(v)] + list(g)
    ext_q = [v for p in pts for v in (p.get("quality_ci") or ()) if math.isfinite(v)] + list(q)
    qspan = float(max(ext_q) - min(ext_q)) or 0.1
    ax = Axes(min(0.0, min(ext_g)), max(ext_g) * 1.05 or 1.0, min(ext_q) - 0.03 * qspan, max(ext_q) + 0.06 * qspan,
              width=width, height=height, top=16)
    marks = [{**p, "cx": round(ax.x(p["gain"]), 1), "cy": round(ax.y(p["quality"]), 1),
              "colour": colours.get(p["defense"], BASELINE_COLOUR),
              "path": marker_path(markers.get(p["attack"], "circle"), ax.x(p["gain"]), ax.y(p["quality"])),
              "whiskers": _whiskers(p, ax)}
             for p in pts]
    front = pareto_2d(g, q)
    line = []
    for k, i in enumerate(front):
        x, y = ax.x(g[i]), ax.y(q[i])
        if k:
            line.append(f"{x:.1f},{line[-1].split(',')[1]}")  # step: horizontal, then vertical
        line.append(f"{x:.1f},{y:.1f}")
    labels = place_labels([(ax.x(g[i]), ax.y(q[i]), pts[i]["defense"]) for i in front], ax)
    xy = [tuple(map(float, p.split(","))) for p in line]
    if len(xy) > 1:  # name the dashed line at the middle of its longest segment
        a, b = max(zip(xy, xy[1:]), key=lambda s: math.dist(*s))
        labels += [{**lab, "italic": True} for lab in
                   place_labels([((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 16, "Pareto front")], ax, placed=labels)]
    return {**ax.frame(xlabel, ylabel), "marks": marks, "front": " ".join(line), "front_labels": labels,
            "legend_defenses": [{"label": d, "colour": c} for d, c in colours.items()
                                if any(p["defense"] == d for p in pts)],
            "legend_attacks": [{"label": a, "path": marker_path(m, 8, 8, 5)} for a, m in markers.items()
                               if any(p["attack"] == a for p in pts)]}


def _whiskers(p: dict, ax: Axes) -> list[tuple[float, float, float, float]]:
    """Interval lines (x1, y1, x2, y2) of a point with ``gain_ci`` and/or ``quality_ci`` (lo, hi) pairs."""
    out = []
    lo, hi = p.get("gain_ci") or (math.nan, math.nan)
    if math.isfinite(lo) and math.isfinite(hi):
        out.append((round(ax.x(lo), 1), round(ax.y(p["quality"]), 1), round(ax.x(hi), 1), round(ax.y(p["quality"]), 1)))
    lo, hi = p.get("quality_ci") or (math.nan, math.nan)
    if math.isfinite(lo) and math.isfinite(hi):
        out.append((round(ax.x(p["gain"]), 1), round(ax.y(lo), 1), round(ax.x(p["gain"]), 1), round(ax.y(hi), 1)))
    return out


def place_labels(anchors: list[tuple[float, float, str]], ax: Axes, char: float = 6.3, line: float = 13.0,
                 placed: list[dict] | None = None) -> list[dict]:
    """Text labels beside points, one per distinct text, moved down until they overlap no earlier label
    (nor those in ``placed``) and kept inside the plot box (right of the point, or left of it near the right edge)."""
    placed = [lab["box"] for lab in placed or []]
    out, seen = [], set()
    right = ax.left + ax.w
    for x, y, text in anchors:
        if text in seen:
            continue
        seen.add(text)
        w = char * len(text)
        left_side = x + 7 + w > right
        x0 = x - 7 - w if left_side else x + 7
        ty = max(ax.top + line, y - 6)
        for _ in range(40):
            box = (x0, ty - line + 3, x0 + w, ty + 3)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
            ty += line
        placed.append(box)
        out.append({"x": round(x0 + (w if left_side else 0), 1), "y": round(min(ty, ax.top + ax.h - 2), 1),
                    "text": text, "anchor": "end" if left_side else "start", "box": box})
    return out


def budget_curves(series: list[dict], colours: dict[str, str], *, title: str, width: int = 330,
                  height: int = 230) -> dict | None:
    """One panel: ``series`` of {label, points: [(budget, gain)], dashed} as polylines with markers."""
    xs = [x for s in series for x, _ in s["points"] if math.isfinite(x)]
    ys = [y for s in series for _, y in s["points"] if math.isfinite(y)]
    if not xs or not ys:
        return None
    budgets = sorted(set(xs))
    xt = nice_ticks(0.0, max(budgets), 4) if len(budgets) > 5 else [0.0] + budgets
    ax = Axes(0.0, max(budgets) * (1.25 if len(budgets) == 1 else 1.04), 0.0, max(ys) * 1.05 or 1.0, width=width,
              height=height, left=50, right=24, xticks=xt)
    lines = []
    for s in series:
        pts = [(ax.x(x), ax.y(y)) for x, y in sorted(s["points"]) if math.isfinite(x) and math.isfinite(y)]
        if not pts:
            continue
        lines.append({"label": s["label"], "colour": s.get("colour") or colours.get(s["label"], BASELINE_COLOUR),
                      "dashed": s.get("dashed", False),
                      "d": " ".join(f"{x:.1f},{y:.1f}" for x, y in pts),
                      "dots": [{"cx": round(x, 1), "cy": round(y, 1),
                                "title": f"{s['label']}: budget {fmt_budget(bx)}, gain {by:.4g}"}
                               for (x, y), (bx, by) in zip(pts, sorted(s["points"]))]})
    frame = ax.frame("budget", "gain", xfmt=fmt_budget)
    frame["xticks"] = [{"p": round(ax.x(t), 1), "label": fmt_budget(t)} for t in xt]
    return {**frame, "title": title, "lines": lines, "single_budget": len(budgets) == 1}


def heat_colour(v: float, vmax: float) -> tuple[str, str]:
    """Background and text colour of a heatmap cell: white at 0 to dark red at ``vmax``."""
    if not math.isfinite(v) or vmax <= 0:
        return "#eeeeee", "#555555"
    t = max(0.0, min(1.0, v / vmax))
    lo, hi = (255, 255, 255), (165, 15, 21)
    rgb = tuple(round(a + (b - a) * t) for a, b in zip(lo, hi))
    return "#%02x%02x%02x" % rgb, ("#ffffff" if t > 0.55 else "#222222")

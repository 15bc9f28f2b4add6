"""Image strips of the report, read from the stored ``strip`` stages (:mod:`benchmark.stages.strip`).

``report`` computes no image and builds no dataset, metric or defense: the run stored, when each cell finished,
its strip's PNG files (clean ``x``, attacked ``x'``, purified ``D(x')``, the amplified differences and the zoomed
crop) and a record with everything the captions say (scores, PSNR, amplification, the crop's region, why a panel
is missing). The page embeds the files as they are (lossless PNG data URIs), so it stays one self-contained file.

Per section (dataset, metric) the strips are the baseline's and each defense's under its worst-case attack, in
ranking order, on one image (the stage picks it per (dataset, metric)). A section shows at most
``STRIPS_PER_SECTION`` strips and ``SECTION_IMAGE_BYTES`` of images: the baselines, then the best and the worst
ranked defenses alternately (1st, last, 2nd, second to last, ...) while both budgets allow; the strips left out are
listed with the folder of the run directory that holds their images. A cell without a stored strip (a run stored
before strips were made at run time, a strip stage that failed or has not run yet) says why.
"""
from __future__ import annotations

import base64
import logging
import math
from pathlib import Path

from ..store import RunStore

log = logging.getLogger(__name__)

STRIPS_PER_SECTION = 12          # strips shown per (dataset, metric) section
SECTION_IMAGE_BYTES = 3_000_000  # PNG bytes embedded per section (base64 adds a third)
OLD_RUN = ("no image strip stored: the run was written before strips were made when a cell finishes; run it again "
           "with --resume to add them")


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _score(v) -> str:
    return f"{_num(v):.4g}" if math.isfinite(_num(v)) else "–"


def _db(v) -> str:
    return f"{_num(v):.1f} dB" if math.isfinite(_num(v)) else "–"


class StoredStrips:
    """The stored strip stages of a run: records by key, their images as data URIs, why one is missing."""

    def __init__(self, run_dir: Path, errors: list[dict] | None = None):
        self.store = RunStore(run_dir)
        self._errors = {e.get("key"): e for e in errors} if errors is not None else None
        self._records: dict[str, dict | None] = {}

    def error(self, key: str) -> dict | None:
        if self._errors is None:
            self._errors = {e.get("key"): e for e in self.store.errors()}
        return self._errors.get(key)

    def record(self, key: str | None) -> tuple[dict | None, str]:
        """The strip record of ``key`` (None and why when there is none to show)."""
        if key is None:
            return None, OLD_RUN
        if key not in self._records:
            try:
                self._records[key] = self.store.load("strip", key) if self.store.has("strip", key) else None
            except (OSError, ValueError) as exc:
                log.warning("strip record %s is unreadable (%s)", self.store.stage_path("strip", key), exc)
                self._records[key] = None
        rec = self._records[key]
        if rec is None:
            err = self.error(key)
            if err is not None:
                return None, f"the strip stage failed: {err.get('error', 'unknown error')}"
            return None, "no image strip stored: the run stopped before this cell's strip was made"
        if rec.get("why"):
            return None, rec["why"]
        return rec, ""

    def nbytes(self, key: str | None) -> int:
        rec, _ = self.record(key)
        return sum(int(f.get("bytes", 0)) for f in (rec or {}).get("files", {}).values())

    def uri(self, key: str, name: str, rec: dict) -> str | None:
        f = rec["files"].get(name)
        if f is None:
            return None
        path = self.store.root / "stages" / "strip" / key / f["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("strip image %s is missing (%s)", path, exc)
            return None
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    def folder(self, key: str | None) -> str:
        return f"stages/strip/{key}/" if key else "–"


def _panel(role: str, src: str, alt: str, text: str, f: dict, zoom: int = 1, wide: bool = False) -> dict:
    return {"role": role, "src": src, "alt": alt, "text": text, "wide": wide,
            "width": int(f["width"]) * zoom, "height": int(f["height"]) * zoom}


def choose(cells: list[dict], strips: StoredStrips) -> tuple[list[dict], list[dict]]:
    """(shown, left out): the cells (in ranking order, baselines first) whose strips fit the section's budgets."""
    base = [c for c in cells if c.get("baseline")]
    ranked = [c for c in cells if not c.get("baseline")]
    order = list(base)
    lo, hi = 0, len(ranked) - 1
    while lo <= hi:   # best, worst, second best, second worst, ...
        order.append(ranked[lo])
        if hi != lo:
            order.append(ranked[hi])
        lo, hi = lo + 1, hi - 1
    keep, total = set(), 0
    for c in order:
        key = (c.get("keys") or {}).get("strip")
        b = strips.nbytes(key)
        if len(keep) >= STRIPS_PER_SECTION or (keep and total + b > SECTION_IMAGE_BYTES):
            continue
        keep.add(id(c))
        total += b
    return [c for c in cells if id(c) in keep], [c for c in cells if id(c) not in keep]


PANELS = ("attacked", "purified", "diff_attacked", "diff_purified", "zoom")   # a strip's panels, in order


def strip_panels(strips: StoredStrips, key: str, rec: dict, names: tuple[str, ...] = PANELS) -> list[dict]:
    """The panels ``names`` of one stored strip that it has (``clean`` is one too), in that order."""
    image, sc, ps = rec["image_id"], rec.get("scores", {}), rec.get("psnr", {})
    amp, linf, zoom = rec.get("amp", {}), rec.get("linf", {}), int(rec.get("zoom", 1))
    files = rec["files"]
    purified = "purified" in files
    captions = {
        "clean": ("clean x", f"clean {image}", f"s = {_score(sc.get('score'))}"),
        "attacked": ("attacked x'", f"attacked {image}",
                     f"s' = {_score(sc.get('score_adv'))} · {_db(ps.get('attack', {}).get('stored'))}"),
        "purified": ("purified D(x')", f"purified {image}",
                     f"s'_D = {_score(sc.get('score_adv_def'))} · {_db(ps.get('def_adv', {}).get('stored'))}"),
        "diff_attacked": (f"|x' − x| ×{amp.get('attacked', 1)}", f"difference {image}",
                          f"L∞ {255 * float(linf.get('attacked', math.nan)):.1f}/255"),
        "diff_purified": (f"|D(x') − x| ×{amp.get('purified', 1)}", f"purified difference {image}",
                          f"L∞ {255 * float(linf.get('purified', math.nan)):.0f}/255 from x"
                          + (" (it moves pixels: against the unmoved x)" if rec.get("changes_geometry") else "")),
    }
    if "region" in rec:
        top, left, side = rec["region"]
        captions["zoom"] = (f"{zoom}× zoom: x | x'" + (" | D(x')" if purified else ""), f"zoom {image}",
                            f"{side}×{side} px at ({left}, {top}): the largest perturbation")
    panels = []
    for name in names:
        src = strips.uri(key, name, rec) if name in files and name in captions else None
        if src is not None:
            role, alt, text = captions[name]
            panels.append(_panel(role, src, alt, text, files[name], zoom if name == "zoom" else 1, name == "zoom"))
    return panels


def section_strips(strips: StoredStrips, cells: list[dict]) -> dict:
    """The strips of one section: ``cells`` (dicts with dataset, metric, attack, defense, keys, anchor, baseline) in
    the order shown. Returns the section's clean panel, one strip per shown cell, the cells left out and notes."""
    shown, left = choose(cells, strips)
    clean, image, out, notes = None, None, [], []
    for cell in shown:
        key = (cell.get("keys") or {}).get("strip")
        rec, why = strips.record(key)
        if rec is None:
            out.append({**cell, "panels": [], "why": why})
            continue
        if image is None:
            image = rec["image_id"]
            clean = next(iter(strip_panels(strips, key, rec, ("clean",))), None)
            notes.append(f"The image is {rec.get('pick', 'picked by the run')}")
            if rec.get("scaled"):
                notes.append(f"images are {rec['width']}×{rec['height']} px, shown scaled to {rec['max_side']} px; "
                             "the zoomed crops are at native resolution")
        sc = rec.get("scores", {})
        out.append({**cell, "image_id": rec["image_id"],
                    "panels": strip_panels(strips, key, rec, (("clean",) if rec["image_id"] != image else ()) + PANELS),
                    "why": "" if cell.get("baseline") else rec.get("why_purified", ""),
                    "scores": f"s = {_score(sc.get('score'))}, s' = {_score(sc.get('score_adv'))}, "
                              f"s_D = {_score(sc.get('score_def'))}, s'_D = {_score(sc.get('score_adv_def'))}"})
    left_out = [{"defense": c["defense"], "attack": c["attack"],
                 "folder": strips.folder((c.get("keys") or {}).get("strip"))} for c in left]
    return {"image_id": image, "clean": clean, "strips": out, "notes": notes, "left_out": left_out,
            "budget": f"{STRIPS_PER_SECTION} strips, {SECTION_IMAGE_BYTES / 1e6:.0f} MB of images"}


__all__ = ["STRIPS_PER_SECTION", "SECTION_IMAGE_BYTES", "StoredStrips", "choose", "section_strips"]

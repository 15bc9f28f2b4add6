"""Image strips of the report: what the attack does to an image and what the defense leaves of it.

Per section (dataset, metric) one image is shown: the one on which the strongest attack on the undefended metric
moves the score most. Its clean version ``x`` is shown once; then, for the baseline and for every defense in
ranked order, under that defense's worst-case attack (the one a ranking judges it by): the attacked image ``x'``,
the purified ``D(x')``, ``|x' − x|`` and ``|D(x') − x|`` amplified by the same factor (stated), and a 4× zoomed
crop (nearest neighbour) of ``x``, ``x'`` and ``D(x')`` around the region where the perturbation is largest.
Images are lossless PNG at their native size up to ``MAX_SIDE`` pixels (a larger image is scaled down, and the
strip says so), so that a 4/255 perturbation is visible in the zoom and the difference panels.

Where the images come from:

- ``x``: the dataset rebuilt from the manifest (plugin name and parameters) and brought to the run's size
  policy, checked against the stored ``PSNR(x, x')``; kept as a lossless PNG in ``<run>/cache/clean/`` so
  that later renderings do not load the dataset again;
- ``x'``: the attack stage's stored image files (``<run>/stages/attack/<key>/``, :mod:`benchmark.attacked`);
- ``D(x')``: purified images are not stored, so for the image shown the defense is rebuilt from the manifest
  and run again on ``x'``: a deterministic defense on the image alone, a stochastic one on the image's whole
  batch with the stage's seed (``seed_from(run seed, dataset and defense key, batch ids)``, as the runner
  draws it). It is shown only when its ``PSNR(x, D(x'))`` matches the stored one; otherwise (and for smoothing
  defenses, which score noisy copies without changing the image, for defenses slower than ``MAX_SECONDS`` per
  image, and for defenses that cannot be rebuilt here) the strip says why it is missing.
"""
from __future__ import annotations

import base64
import io
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import PluginSpec
from ..attacked import read_shape
from ..images import batches
from ..quality import PSNR_CAP, psnr
from ..seeds import seed_from
from ..store import RunStore, content_key
from .protocol import load_plugin_files

log = logging.getLogger(__name__)

MAX_SIDE = 256       # pixels: images are shown at their native size up to this long side
ZOOM = 4             # the crop around the largest perturbation is enlarged this many times
CROP = 32            # pixels: side of that crop (before zooming)
MAX_SECONDS = 2.0    # recompute D(x') only for defenses at most this slow per image (stored seconds_def_adv)
PSNR_TOL = 0.05      # dB: a recomputed image must reproduce the stored PSNR within this


def _uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def png_uri(x: torch.Tensor, max_side: int = MAX_SIDE) -> str:
    """3×H×W in [0, 1] -> ``data:image/png;base64,...``, lossless, at most ``max_side`` pixels on its long side
    (scaled down with Lanczos only when larger; a 1-channel image stays grey)."""
    from PIL import Image

    arr = _uint8(x)
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


thumbnail = png_uri  # the name earlier versions used


def amplification(d: torch.Tensor) -> int:
    """The factor that brings the largest difference ``d`` to about half the range (at least 1)."""
    return max(1, round(0.5 / max(float(d.max()), 1e-6)))


def difference(a: torch.Tensor, b: torch.Tensor, amp: int) -> torch.Tensor:
    """``|a − b|`` amplified by ``amp``, as a grey image (the largest over the channels: one channel to store)."""
    return ((a - b).abs().amax(0, keepdim=True) * amp).clamp(0, 1)


def largest_region(d: torch.Tensor, size: int = CROP) -> tuple[int, int, int]:
    """(top, left, side) of the ``size``-pixel square where the mean of ``d`` (C×H×W) is largest."""
    h, w = d.shape[-2:]
    side = min(size, h, w)
    energy = F.avg_pool2d(d.abs().mean(0)[None, None].float(), side, stride=1)[0, 0]
    k = int(torch.argmax(energy))
    return k // energy.shape[1], k % energy.shape[1], side


def zoomed(x: torch.Tensor, region: tuple[int, int, int], zoom: int = ZOOM) -> torch.Tensor:
    top, left, side = region
    crop = x[:, top:top + side, left:left + side]
    return crop.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)


def _write_png(path: Path, x: torch.Tensor) -> None:
    from PIL import Image

    from ..store import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(buf, format="PNG")
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:  # a read-only run directory: no cache, nothing else lost
        log.info("report images: cache %s not written (%s)", path, exc)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of one pair as the runner stores it (:func:`benchmark.quality.pair_quality`)."""
    return min(PSNR_CAP, float(psnr(a[None].clamp(0, 1), b[None].clamp(0, 1))[0]))


class StoredImages:
    """The attacked images of one stored attack stage, by image id, each read from its file when asked for."""

    def __init__(self, store: RunStore, key: str):
        self.store, self.key = store, key
        rec = store.load("attack", key) if store.has("attack", key) else {"records": [], "attack_meta": {}}
        self.fmt = rec["attack_meta"].get("image_format", "png")
        self._ids = {r["image_id"] for r in rec["records"]
                     if store.image_path("attack", key, r["image_id"], self.fmt).is_file()}
        self._shapes: dict[str, tuple[int, int, int]] = {}

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._ids

    def get(self, image_id: str) -> torch.Tensor | None:
        if image_id not in self._ids:
            return None
        try:
            return self.store.load_image("attack", self.key, image_id, self.fmt)
        except Exception as exc:
            log.info("report images: attacked image %s of %s not readable (%s)", image_id, self.key, exc)
            return None

    def shape(self, image_id: str) -> tuple[int, int, int]:
        """From the file's header, read once per image (a strip's batch needs every image's shape)."""
        if image_id not in self._shapes:
            self._shapes[image_id] = read_shape(self.store.image_path("attack", self.key, image_id, self.fmt), self.fmt)
        return self._shapes[image_id]


class _Sources:
    """Lazily rebuilt datasets and defenses of a run, and its attack tensors, each loaded once."""

    def __init__(self, run_dir: Path, manifest: dict):
        self.store, self.manifest = RunStore(run_dir), manifest
        self.specs = {fam: {e["label"]: e for e in (manifest.get("plugins") or {}).get(fam, [])}
                      for fam in ("datasets", "defenses")}
        run = manifest.get("run") or {}
        self.size = tuple(run["image_size"]) if run.get("image_size") else None
        self.policy = run.get("size_policy", "resize")
        self.seed, self.batch_size = run.get("seed", 0), int(run.get("batch_size", 4))
        self._datasets: dict[str, object] = {}
        self._defenses: dict[str, object] = {}
        self._attacks: dict[str, StoredImages] = {}
        self._clean: dict[tuple[str, str], torch.Tensor | None] = {}
        self._plugins_loaded = False

    def _load_plugin_files(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        load_plugin_files(self.manifest)  # a plugin that cannot be loaded: its images fall back below

    def _spec(self, family: str, label: str) -> PluginSpec | None:
        """The plugin spec of ``label`` from the manifest, parameters converted back to their annotated types
        (the manifest stores paths as strings, tuples as lists)."""
        e = self.specs[family].get(label)
        if not e:
            return None
        from ..config import coerce
        from ..errors import ConfigError
        from ..registry import REGISTRIES, constructor_params

        self._load_plugin_files()
        params = dict(e.get("params") or {})
        try:
            anns = {p: ann for p, ann, _ in constructor_params(REGISTRIES[family].get(e["name"]))}
        except Exception:
            anns = {}
        for k, v in params.items():
            try:
                params[k] = coerce(v, anns[k], "manifest.json", f"{family}.{k}", Path("/")) if k in anns else v
            except ConfigError:
                pass
        return PluginSpec(family=family, name=e["name"], params=params, label=label)

    def _build(self, family: str, label: str, cache: dict):
        if label not in cache:
            self._load_plugin_files()
            spec = self._spec(family, label)
            try:
                cache[label] = spec.build() if spec else None
            except Exception as exc:
                log.info("report images: cannot rebuild %s %s here (%s)", family[:-1], label, exc)
                cache[label] = None
        return cache[label]

    def clean(self, dataset: str, image_id: str) -> torch.Tensor | None:
        """The clean image as the run prepared it; cached as a lossless PNG in ``<run>/cache/clean/`` (the
        prepared image has 8-bit values), since loading may be slow (the synthetic dataset computes its MOS)."""
        key = (dataset, image_id)
        if key in self._clean:
            return self._clean[key]
        from ..images import apply_size_policy, read_image, to_tensor

        spec = self._spec("datasets", dataset)
        name = content_key({"dataset": spec.key() if spec else dataset, "image": image_id, "size": self.size,
                            "policy": self.policy})
        path = self.store.root / "cache" / "clean" / f"{name}.png"
        x = None
        if path.is_file():
            try:
                x = to_tensor(read_image(path))
            except Exception:
                x = None
        if x is None:
            ds = self._build("datasets", dataset, self._datasets)
            try:
                x = apply_size_policy(to_tensor(ds.load(image_id).image), self.size, self.policy) if ds else None
            except Exception as exc:
                log.info("report images: cannot load %s from %s (%s)", image_id, dataset, exc)
            if x is not None:
                _write_png(path, x)
        self._clean[key] = x
        return x

    def attacked(self, key: str) -> StoredImages:
        if key not in self._attacks:
            self._attacks[key] = StoredImages(self.store, key)
        return self._attacks[key]

    def purified(self, cell: dict, image_id: str, order: list[str], adv: StoredImages
                 ) -> tuple[torch.Tensor | None, str]:
        """D(x') recomputed for one image (None and why not, when it is not possible here)."""
        defense = self._build("defenses", cell["defense"], self._defenses)
        if defense is None:
            return None, "the defense cannot be rebuilt here"
        if getattr(defense, "wraps_metric", False):
            return None, "a smoothing defense scores noisy copies of x' and does not change the image"
        ds, df = self._spec("datasets", cell["dataset"]), self._spec("defenses", cell["defense"])
        if getattr(defense, "stochastic", False):  # the image's whole batch, as the runner drew its noise
            items = [(i, adv.shape(i)) for i in order if i in adv]
            batch = next((b for b in batches(items, self.batch_size, shape=lambda it: it[1])
                          if image_id in [i for i, _ in b]), None)
            ids = [i for i, _ in batch] if batch is not None else []
        else:
            ids = [image_id] if image_id in adv else []
        images = [adv.get(i) for i in ids]
        if not ids or any(t is None for t in images):
            return None, "the attacked image is missing"
        dkey = content_key({"dataset": ds.key(), "defense": df.key()})
        gen = torch.Generator().manual_seed(seed_from(self.seed, dkey, ids))
        with torch.no_grad():
            out = defense(torch.stack(images), generator=gen).clamp(0, 1)
        return out[ids.index(image_id)], ""


def _panel(role: str, src: str, alt: str, text: str = "", wide: bool = False) -> dict:
    return {"role": role, "src": src, "alt": alt, "text": text, "wide": wide}


def _score(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{v:.4g}" if math.isfinite(v) else "–"


def pick_image(records: pd.DataFrame) -> str | None:
    """The image on which the cell's attack moves the score most in its direction (``records``: one cell)."""
    if records.empty:
        return None
    r = abs(float(records["range_hi"].iloc[0]) - float(records["range_lo"].iloc[0])) or 1.0
    sign = -1.0 if bool(records["lower_better"].iloc[0]) else 1.0
    d = float(records["attack_direction"].iloc[0]) if "attack_direction" in records else 1.0
    gain = d * sign * (records["score_adv_def"].astype(float) - records["score_def"].astype(float)) / r
    return str(records.loc[gain.idxmax(), "image_id"]) if gain.notna().any() else str(records["image_id"].iloc[0])


def section_strips(run_dir: Path, manifest: dict, records: pd.DataFrame, cells: list[dict], image_id: str, *,
                   src: "_Sources | None" = None) -> dict:
    """The strips of one section: ``cells`` (dicts with dataset, metric, attack, defense, keys, index, anchor,
    baseline) in the order shown, each on image ``image_id``. Returns the clean panel and one strip per cell."""
    src = src or _Sources(run_dir, manifest)
    by_cell = {k: g for k, g in records.groupby(["dataset", "metric", "attack", "defense"], sort=False)}
    clean, strips, notes = None, [], set()
    for cell in cells:
        g = by_cell.get((cell["dataset"], cell["metric"], cell["attack"], cell["defense"]))
        if g is None or g.empty or not cell.get("keys"):
            continue
        hit = g[g["image_id"].astype(str) == str(image_id)]
        if hit.empty:
            continue
        rec = hit.iloc[0]
        adv = src.attacked(cell["keys"]["attack"])
        x, xa = src.clean(cell["dataset"], str(rec["image_id"])), adv.get(rec["image_id"])
        stored_att, stored_def = float(rec.get("psnr_attack", math.nan)), float(rec.get("psnr_def_adv", math.nan))
        if x is not None and xa is not None and x.shape == xa.shape and not abs(_psnr(xa, x) - stored_att) <= PSNR_TOL:
            notes.add("the clean image rebuilt from the dataset does not match the stored PSNR(x, x'); it is not shown")
            x = None
        if x is None or xa is None or x.shape != xa.shape:
            strips.append({**cell, "image_id": image_id, "panels": [], "why": "the clean or attacked image is not "
                           "available here"})
            continue
        if clean is None:
            clean = _panel("clean x", png_uri(x), f"clean {image_id}", f"s = {_score(rec['score'])}")
            if max(x.shape[-2:]) > MAX_SIDE:
                notes.add(f"images are {x.shape[-1]}×{x.shape[-2]} px, shown scaled to {MAX_SIDE} px; the zoomed "
                          "crops are at native resolution")
        purified, why = None, ""
        if not cell.get("baseline"):
            seconds = float(pd.to_numeric(g.get("seconds_def_adv"), errors="coerce").mean()) \
                if "seconds_def_adv" in g else 0.0
            if seconds > MAX_SECONDS:
                why = f"D(x') not recomputed: the defense takes {seconds:.2g} s per image"
            else:
                purified, why = src.purified(cell, str(rec["image_id"]), list(g["image_id"]), adv)
                if purified is not None:
                    from ..images import resize_to

                    purified = resize_to(purified[None], x[None])[0]
                    got = _psnr(purified, x)
                    if not abs(got - stored_def) <= PSNR_TOL:
                        purified, why = None, (f"D(x') recomputed here gives PSNR {got:.2f} dB, not the stored "
                                               f"{stored_def:.2f} dB: not shown")
                elif why:
                    why = f"D(x') not shown: {why}"
        amp = amplification((xa - x).abs())
        region = largest_region(xa - x)
        panels = [_panel("attacked x'", png_uri(xa), f"attacked {image_id}",
                         f"s' = {_score(rec['score_adv'])} · {stored_att:.1f} dB")]
        if purified is not None:
            panels.append(_panel("purified D(x')", png_uri(purified), f"purified {image_id}",
                                 f"s'_D = {_score(rec['score_adv_def'])} · {stored_def:.1f} dB"))
        panels.append(_panel(f"|x' − x| ×{amp}", png_uri(difference(xa, x, amp)), f"difference {image_id}",
                             f"L∞ {255 * float((xa - x).abs().max()):.1f}/255"))
        if purified is not None:
            amp_d = amplification((purified - x).abs())
            moved = " (it moves pixels: against the unmoved x)" if bool(rec.get("defense_changes_geometry", False)) \
                else ""
            panels.append(_panel(f"|D(x') − x| ×{amp_d}", png_uri(difference(purified, x, amp_d)),
                                 f"purified difference {image_id}",
                                 f"L∞ {255 * float((purified - x).abs().max()):.0f}/255 from x{moved}"))
        crops = [x, xa] + ([purified] if purified is not None else [])
        zoom = torch.cat([torch.cat([zoomed(c, region), torch.ones(3, region[2] * ZOOM, 2)], 2) for c in crops], 2)
        panels.append(_panel(f"{ZOOM}× zoom: x | x'" + (" | D(x')" if purified is not None else ""),
                             png_uri(zoom[:, :, :-2], max_side=10_000), f"zoom {image_id}",
                             f"{region[2]}×{region[2]} px at ({region[1]}, {region[0]}): the largest perturbation",
                             wide=True))
        strips.append({**cell, "image_id": image_id, "panels": panels, "why": why,
                       "scores": f"s = {_score(rec['score'])}, s' = {_score(rec['score_adv'])}, "
                                 f"s_D = {_score(rec['score_def'])}, s'_D = {_score(rec['score_adv_def'])}"})
    return {"image_id": image_id, "clean": clean, "strips": strips, "notes": sorted(notes)}


def report_strips(run_dir: Path, manifest: dict, records: pd.DataFrame, sections: list[dict], *,
                  progress: bool = False) -> list[dict | None]:
    """:func:`section_strips` of each of ``sections`` (dicts with ``cells`` and ``image_id``), on one torch thread:
    the work is a few small images, for which thread start-up costs more than the arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        src = _Sources(run_dir, manifest)
        return [section_strips(run_dir, manifest, records, s["cells"], s["image_id"], src=src)
                if s.get("image_id") is not None else None
                for s in tqdm(sections, desc="report: image strips", unit="section", disable=not progress,
                              leave=False)]
    finally:
        torch.set_num_threads(threads)


__all__ = ["MAX_SIDE", "ZOOM", "largest_region", "pick_image", "png_uri", "report_strips", "section_strips"]

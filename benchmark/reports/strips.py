"""Image strips of the report: for every cell, the images of largest, median and smallest robust gain
``|s − s'_D| / r``, each as clean x | attacked x' | purified D(x') thumbnails with their scores and PSNR.

Where the images come from:

- ``x``: the dataset rebuilt from the manifest (plugin name and parameters) and brought to the run's size
  policy, checked against the stored ``PSNR(x, x')``; kept as a lossless PNG in ``<run>/cache/clean/`` so
  that later renderings do not load the dataset again;
- ``x'``: the attack stage's stored image files (``<run>/stages/attack/<key>/``, :mod:`benchmark.attacked`),
  read one at a time;
- ``D(x')``: purified images are not stored, so for the (at most three) images shown the defense is rebuilt
  from the manifest and run again on ``x'``: a deterministic defense on the image alone, a stochastic one
  on the image's whole batch with the stage's seed (``seed_from(run seed, dataset and defense key,
  batch ids)``, as the runner draws it). The result is shown only when its ``PSNR(x, D(x'))`` matches the
  stored one; otherwise (and for smoothing defenses, which score noisy copies without changing the image,
  for defenses slower than ``MAX_SECONDS`` per image, and for defenses that cannot be rebuilt here) the
  third thumbnail is ``|x' − x|`` amplified, and the strip says so.

Thumbnails are at most ``THUMB`` pixels on their long side, JPEG, embedded as data URIs.
"""
from __future__ import annotations

import base64
import io
import logging
import math
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import PluginSpec
from ..attacked import read_shape
from ..images import batches
from ..quality import PSNR_CAP, psnr
from ..seeds import seed_from
from ..store import RunStore, content_key
from .protocol import load_plugin_files

log = logging.getLogger(__name__)

THUMB = 160          # pixels, long side
JPEG_QUALITY = 72
MAX_SECONDS = 2.0    # recompute D(x') only for defenses at most this slow per image (stored seconds_def_adv)
PSNR_TOL = 0.05      # dB: a recomputed image must reproduce the stored PSNR within this


def thumbnail(x: torch.Tensor, size: int = THUMB) -> str:
    """3×H×W in [0, 1] -> ``data:image/jpeg;base64,...`` at most ``size`` pixels on its long side."""
    from PIL import Image

    arr = (x.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    im = Image.fromarray(arr)
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _write_png(path: Path, x: torch.Tensor) -> None:
    from PIL import Image

    from ..store import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).save(buf, format="PNG")
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:  # a read-only run directory: no cache, nothing else lost
        log.info("report images: cache %s not written (%s)", path, exc)


def picks(g: pd.DataFrame) -> list[tuple[str, pd.Series, float]]:
    """(which, record, gain) for the images of largest, median and smallest robust gain (distinct images)."""
    r = abs(float(g["range_hi"].iloc[0]) - float(g["range_lo"].iloc[0])) or 1.0
    gain = (g["score"].astype(float) - g["score_adv_def"].astype(float)).abs() / r
    order = list(gain.sort_values(ascending=False, kind="stable").index)
    chosen, out = set(), []
    for which, pos in (("largest gain", 0), ("median gain", len(order) // 2), ("smallest gain", len(order) - 1)):
        i = order[pos]
        if i not in chosen:
            chosen.add(i)
            out.append((which, g.loc[i], float(gain.loc[i])))
    return out


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


def _caption(role: str, label: str, score: float, psnr: float | None = None) -> dict:
    s = f"{label} = {score:.4g}" if math.isfinite(score) else label
    return {"role": role, "text": s + (f" · {psnr:.1f} dB" if psnr is not None and math.isfinite(psnr) else "")}


def cell_strips(run_dir: Path, manifest: dict, records: pd.DataFrame, cells: list[dict], *,
                progress: bool = False) -> dict[int, dict]:
    """Strip of each cell (``cells``: dicts with dataset, metric, attack, defense, keys, index) by index.

    Runs torch on one thread: the work is a few small images, for which thread start-up and
    synchronisation cost more than the arithmetic (tens of times more on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _cell_strips(run_dir, manifest, records, cells, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _cell_strips(run_dir: Path, manifest: dict, records: pd.DataFrame, cells: list[dict], *,
                 progress: bool = False) -> dict[int, dict]:
    src = _Sources(run_dir, manifest)
    by_cell = {k: g for k, g in records.groupby(["dataset", "metric", "attack", "defense"], sort=False)}
    out: dict[int, dict] = {}
    for cell in tqdm(cells, desc="report: image strips", unit="cell", disable=not progress, leave=False):
        g = by_cell.get((cell["dataset"], cell["metric"], cell["attack"], cell["defense"]))
        if g is None or g.empty or not cell.get("keys"):
            continue
        adv = src.attacked(cell["keys"]["attack"])
        order = list(g["image_id"])
        seconds = float(pd.to_numeric(g.get("seconds_def_adv"), errors="coerce").mean()) \
            if "seconds_def_adv" in g else 0.0
        notes, strip = set(), []
        for which, rec, gain in picks(g):
            i = rec["image_id"]
            x, xa = src.clean(cell["dataset"], i), adv.get(i)
            stored_att, stored_def = float(rec.get("psnr_attack", math.nan)), float(rec.get("psnr_def_adv", math.nan))
            if x is not None and xa is not None and x.shape == xa.shape and \
                    not abs(_psnr(xa, x) - stored_att) <= PSNR_TOL:
                notes.add("the clean image rebuilt from the dataset does not match the stored PSNR(x, x'); "
                          "it is not shown")
                x = None
            purified, why = (None, "the clean or attacked image is not available")
            if x is not None and xa is not None:
                if seconds > MAX_SECONDS:
                    why = f"the defense takes {seconds:.2g} s per image"
                else:
                    purified, why = src.purified(cell, i, order, adv)
                if purified is not None:
                    from ..images import resize_to

                    got = _psnr(resize_to(purified[None], x[None])[0], x)
                    if not abs(got - stored_def) <= PSNR_TOL:
                        purified, why = None, (f"D(x') recomputed here gives PSNR {got:.2f} dB, not the stored "
                                               f"{stored_def:.2f} dB")
            thumbs = []
            if x is not None:
                thumbs.append({"src": thumbnail(x), "alt": f"clean {i}",
                               "caption": _caption("clean x", "s", rec["score"])})
            if xa is not None:
                thumbs.append({"src": thumbnail(xa), "alt": f"attacked {i}",
                               "caption": _caption("attacked x'", "s'", rec["score_adv"], stored_att)})
            if purified is not None:
                cap = _caption("purified D(x')", "s'_D", rec["score_adv_def"], stored_def)
                aligned = float(rec.get("psnr_def_adv_aligned", math.nan))
                if math.isfinite(aligned) and abs(aligned - stored_def) > PSNR_TOL:  # moved pixels: A(x) too
                    cap["text"] += f" ({aligned:.1f} aligned)"
                thumbs.append({"src": thumbnail(purified), "alt": f"purified {i}", "caption": cap})
            elif x is not None and xa is not None:
                d = (xa - x).abs()
                amp = max(1, round(0.5 / max(float(d.max()), 1e-6)))
                thumbs.append({"src": thumbnail((d * amp).clamp(0, 1)), "alt": f"difference {i}",
                               "caption": {"role": f"|x' − x| ×{amp}",
                                           "text": f"s'_D = {float(rec['score_adv_def']):.4g} · {stored_def:.1f} dB"}})
                notes.add(f"D(x') not shown ({why}): the third image is |x' − x| amplified")
            strip.append({"which": which, "image_id": i, "gain": gain, "thumbs": thumbs})
        out[cell["index"]] = {"picks": strip, "notes": sorted(notes)}
    return out


__all__ = ["THUMB", "cell_strips", "picks", "thumbnail"]

"""The ``strip`` stage: the images of one cell's report strip, made once when the cell finishes and stored, so that
``report`` only reads files (it never builds a dataset, a metric or a defense).

Which image: per (dataset, metric), the image whose clean score is the median of the clean stage's finite scores
(ties broken by image id). It depends on neither the attack nor the defense, so every strip of a report section
shows the same image, also where the attack is adaptive (one attack stage per defense, whose gains differ).

What is stored, under ``<run>/stages/strip/<key>/``, as lossless 8-bit PNG at most ``MAX_SIDE`` pixels on the long
side (a larger image is scaled down with Lanczos and the record says so):

- ``clean`` ``x`` (the dataset's image at the run's size), ``attacked`` ``x'`` (the attack stage's file);
- ``purified`` ``D(x')``, when the defense changes ``x'`` and does not wrap the metric (a smoothing or
  fine-tuned-metric defense scores ``x'`` through its model and leaves the image as it is);
- ``diff_attacked`` ``|x' − x|`` and ``diff_purified`` ``|D(x') − x|``, grey (the largest change over the
  colour channels), each amplified by the factor in the record;
- ``zoom``: the ``CROP``-pixel square where the perturbation is largest, of ``x``, ``x'`` and ``D(x')`` side by
  side (1 px white between) at native resolution; the page draws it ``ZOOM``× larger, nearest neighbour.

``D(x')`` is what the ``def_adv`` stage computed: the image's batch of the dataset
(:meth:`~benchmark.source.ImageSource.plan` at ``run.batch_size``), its stored attacked images, the generator
seeded by :func:`~benchmark.stages.purify.defense_seed` (run seed, dataset and defense, batch ids), then
``clamp(0, 1)``. Two checks tie the
images to the stored records: ``PSNR(x, x')`` must equal the attack stage's ``psnr_attack`` and ``PSNR(x, D(x'))``
(``D(x')`` brought to ``x``'s size) the ``def_adv`` stage's ``psnr_def_adv``, each within ``PSNR_TOL`` dB; an image
that fails its check is not stored and the record says why (``why``, ``why_purified``).
"""
from __future__ import annotations

import io
import math
from typing import Any

import torch
import torch.nn.functional as F

from ..images import resize_to
from ..quality import PSNR_CAP, psnr
from .base import Stage, StageKind
from .purify import defense_seed

STRIP_VERSION = 1    # bump when what the stage stores changes (a field of the strip stage's content key)
MAX_SIDE = 256       # pixels: images are stored at their native size up to this long side
ZOOM = 4             # the page enlarges the crop around the largest perturbation this many times
CROP = 32            # pixels: side of that crop
PNG_LEVEL = 6        # zlib level of the stored PNGs: within 1 % of level 9 on photographs, up to 2× faster
PSNR_TOL = 1e-3      # dB: a rebuilt image must reproduce the stored PSNR within this (float rounding only)
PICK = "the one whose clean score is the median of the dataset's (the same in every strip of a section)"


def amplification(d: torch.Tensor) -> int:
    """The factor that brings the largest difference ``d`` to about half the range (at least 1)."""
    return max(1, round(0.5 / max(float(d.max()), 1e-6)))


def difference(a: torch.Tensor, b: torch.Tensor, amp: int) -> torch.Tensor:
    """``|a − b|`` amplified by ``amp``, as a grey 1×H×W image (the largest change over the channels)."""
    return ((a - b).abs().amax(0, keepdim=True) * amp).clamp(0, 1)


def largest_region(d: torch.Tensor, size: int = CROP) -> tuple[int, int, int]:
    """(top, left, side) of the ``size``-pixel square where the mean of ``|d|`` (C×H×W) is largest."""
    h, w = d.shape[-2:]
    side = min(size, h, w)
    energy = F.avg_pool2d(d.abs().mean(0)[None, None].float(), side, stride=1)[0, 0]
    k = int(torch.argmax(energy))
    return k // energy.shape[1], k % energy.shape[1], side


def crops(images: list[torch.Tensor], region: tuple[int, int, int]) -> torch.Tensor:
    """The ``region`` of each image side by side at native resolution, a 1-pixel white column between them."""
    top, left, side = region
    parts = []
    for x in images:
        parts += [x[:, top:top + side, left:left + side], torch.ones(x.shape[0], side, 1)]
    return torch.cat(parts[:-1], 2)


def png(x: torch.Tensor, max_side: int | None = MAX_SIDE) -> tuple[bytes, int, int]:
    """C×H×W in [0, 1] (C = 3, or 1 for grey) -> lossless PNG bytes, width, height; scaled down with Lanczos to
    ``max_side`` on its long side only when larger."""
    from PIL import Image

    arr = (x.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if max_side is not None and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue(), im.width, im.height


def pair_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of one pair as the runner stores it (:func:`benchmark.quality.pair_quality`: capped)."""
    return min(PSNR_CAP, float(psnr(a[None].clamp(0, 1).float(), b[None].clamp(0, 1).float())[0]))


def _finite(v: Any) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def pick_image(clean_rows: list[dict], available: set[str]) -> str | None:
    """The image of ``available`` whose clean score is the median of their finite clean scores (the lower middle
    one of an even count; ties by image id), or None when no image has a finite score."""
    scored = sorted((s, str(r["image_id"])) for r in clean_rows
                    if str(r["image_id"]) in available and math.isfinite(s := _finite(r.get("score"))))
    return scored[(len(scored) - 1) // 2][1] if scored else None


def _checked(what: str, got: float, stored: float) -> str:
    """Why an image is not stored ("" when its PSNR reproduces the stored one)."""
    if math.isfinite(stored) and abs(got - stored) <= PSNR_TOL:
        return ""
    return f"{what} rebuilt here gives PSNR {got:.3f} dB, not the stored {stored:.3f} dB: not shown"


def _rows(ctx, kind: str, key: str | None) -> dict[str, dict]:
    """A stored stage's records by image id (none when it is not stored)."""
    if not key or not ctx.store.has(kind, key):
        return {}
    return {str(r["image_id"]): r for r in ctx.store.load(kind, key)["records"]}


def purified(ctx, stage: Stage, defense, batch: torch.Tensor, ids: list[str], j: int, x: torch.Tensor,
             stored: float) -> tuple[torch.Tensor | None, float, str]:
    """D(x') of image ``j`` of its batch (attacked images ``batch``, ids ``ids``) as the def_adv stage drew it, at
    ``x``'s size: (the image or None when it is not shown, its PSNR against ``x``, why it is not shown)."""
    gen = torch.Generator().manual_seed(defense_seed(ctx, stage.cell, ids))
    batch = batch.to(ctx.device)
    with torch.no_grad():
        out = defense(batch, generator=gen).clamp(0, 1)
    if torch.equal(out, batch):
        return None, math.nan, "the defense leaves x' as it is (D(x') = x')"
    d = resize_to(out[j:j + 1].detach().float().cpu(), x[None])[0]
    got = pair_psnr(d, x)
    why = _checked("D(x')", got, stored)
    return (None if why else d), got, why


def store_panels(ctx, stage: Stage, x: torch.Tensor, xa: torch.Tensor, d: torch.Tensor | None) -> dict[str, Any]:
    """Make and store the strip's PNG files; returns the record's ``files``, ``amp``, ``linf`` and ``region``."""
    amp = amplification((xa - x).abs())
    region = largest_region(xa - x)
    panels = {"clean": (x, MAX_SIDE), "attacked": (xa, MAX_SIDE), "diff_attacked": (difference(xa, x, amp), MAX_SIDE),
              "zoom": (crops([x, xa] + ([d] if d is not None else []), region), None)}
    out: dict[str, Any] = {"files": {}, "amp": {"attacked": amp}, "linf": {"attacked": float((xa - x).abs().max())},
                           "region": list(region)}
    if d is not None:
        amp_d = amplification((d - x).abs())
        panels["purified"] = (d, MAX_SIDE)
        panels["diff_purified"] = (difference(d, x, amp_d), MAX_SIDE)
        out["amp"]["purified"] = amp_d
        out["linf"]["purified"] = float((d - x).abs().max())
    for name, (t, side) in panels.items():
        data, w, h = png(t, side)
        ctx.store.save_image_bytes("strip", stage.key, name, data, "png")
        out["files"][name] = {"file": ctx.store.image_path("strip", stage.key, name, "png").name,
                              "width": w, "height": h, "bytes": len(data)}
    return out


def run(ctx, stage: Stage) -> dict[str, Any]:
    """Make and store the strip images of ``stage``'s cell (see the module docstring); returns its record."""
    cell = stage.cell
    attack = ctx.store.load("attack", stage.deps["attack"])
    adv = {str(r["image_id"]): r for r in attack["records"]}
    defended = _rows(ctx, "def_adv", stage.deps["def_adv"])
    clean = _rows(ctx, "clean", stage.deps["clean"])
    record: dict[str, Any] = {"version": STRIP_VERSION, "pick": PICK, "files": {}, "why": "", "why_purified": ""}
    image_id = pick_image(list(clean.values()), set(adv) & set(defended))
    record["image_id"] = image_id
    if image_id is None:
        return {**record, "why": "no image has a finite clean score"}
    images = ctx.images(cell.dataset)
    group = next((g for g in images.plan(ctx.cfg.run.batch_size) if image_id in {e.image_id for e in g}), None)
    if group is None:
        return {**record, "why": f"image {image_id} is not in dataset {cell.dataset.label} here"}
    ids = [e.image_id for e in group]
    x = images.read(group[ids.index(image_id)])
    score_def = _rows(ctx, "def_clean", stage.deps["def_clean"]).get(image_id, {}).get("score_def")
    record.update(width=int(x.shape[-1]), height=int(x.shape[-2]), scaled=max(x.shape[-2:]) > MAX_SIDE,
                  max_side=MAX_SIDE, zoom=ZOOM,
                  scores={"score": _finite(clean[image_id].get("score")), "score_def": _finite(score_def),
                          "score_adv": _finite(adv[image_id].get("score_adv")),
                          "score_adv_def": _finite(defended[image_id].get("score_adv_def"))})

    defense = ctx.defense(cell.defense)
    batch_ids = [image_id] if defense.wraps_metric else ids   # a defense that wraps the metric is not run here
    batch = ctx.attacked(stage.deps["attack"], batch_ids, attack["attack_meta"]["image_format"])
    j = batch_ids.index(image_id)
    xa = batch[j].detach().float().cpu()
    stored_att = _finite(adv[image_id].get("psnr_attack"))
    stored_def = _finite(defended[image_id].get("psnr_def_adv"))
    got_att = pair_psnr(xa, x) if xa.shape == x.shape else math.nan
    record["psnr"] = {"attack": {"stored": stored_att, "here": got_att}, "def_adv": {"stored": stored_def}}
    if xa.shape != x.shape or _checked("x'", got_att, stored_att):
        return {**record, "why": f"the attacked image {image_id} does not match the dataset's image here (PSNR(x, x') "
                                 f"{got_att:.3f} dB, stored {stored_att:.3f} dB): no images stored"}
    record["changes_geometry"] = bool(defense.changes_geometry)
    d = None
    if defense.wraps_metric:
        record["why_purified"] = ("the defense scores x' through its own model or noisy copies and leaves the image "
                                  "as it is")
    else:
        d, got_def, record["why_purified"] = purified(ctx, stage, defense, batch, batch_ids, j, x, stored_def)
        if math.isfinite(got_def):
            record["psnr"]["def_adv"]["here"] = got_def
    return {**record, **store_panels(ctx, stage, x, xa, d)}


KIND = StageKind(name="strip", deps=("clean", "attack", "def_clean", "def_adv"), uses_metric=True, run=run,
                 doc="the images of the cell's report strip (x, x', D(x'), differences, zoom), stored as PNG")

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
    im.save(buf, format="PNG", compress_level=9)
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
    return f"{what} rebuilt here gives PSNR {got:.2f} dB, not the stored {stored:.2f} dB: not shown"


def run(ctx, stage: Stage) -> dict[str, Any]:
    """Make and store the strip images of ``stage``'s cell (see the module docstring); returns its record."""
    cell, run_cfg = stage.cell, ctx.cfg.run
    attack = ctx.store.load("attack", stage.deps["attack"])
    adv_rows = {str(r["image_id"]): r for r in attack["records"]}
    def_rows = {str(r["image_id"]): r for r in ctx.store.load("def_adv", stage.deps["def_adv"])["records"]}
    clean = ctx.store.load("clean", cell.keys["clean"])
    fmt = attack["attack_meta"]["image_format"]
    record: dict[str, Any] = {"version": STRIP_VERSION, "pick": PICK, "files": {}, "why": "", "why_purified": ""}
    image_id = pick_image(clean["records"], set(adv_rows) & set(def_rows))
    if image_id is None:
        return {**record, "image_id": None, "why": "no image has a finite clean score"}
    images = ctx.images(cell.dataset)
    group = next((g for g in images.plan(run_cfg.batch_size) if image_id in {e.image_id for e in g}), None)
    if group is None:
        return {**record, "image_id": image_id, "why": f"image {image_id} is not in dataset {cell.dataset.label} here"}
    ids = [e.image_id for e in group]
    j = ids.index(image_id)
    x = images.read(group[j])
    clean_score = next((r.get("score") for r in clean["records"] if str(r["image_id"]) == image_id), None)
    score_def = None
    if ctx.store.has("def_clean", cell.keys.get("def_clean", "")):
        score_def = next((r.get("score_def") for r in ctx.store.load("def_clean", cell.keys["def_clean"])["records"]
                          if str(r["image_id"]) == image_id), None)
    record.update(image_id=image_id, width=int(x.shape[-1]), height=int(x.shape[-2]),
                  scaled=max(x.shape[-2:]) > MAX_SIDE, max_side=MAX_SIDE, zoom=ZOOM,
                  scores={"score": _finite(clean_score), "score_adv": _finite(adv_rows[image_id].get("score_adv")),
                          "score_def": _finite(score_def),
                          "score_adv_def": _finite(def_rows[image_id].get("score_adv_def"))})

    defense = ctx.defense(cell.defense)
    inp = ctx.attacked(stage.deps["attack"], ids if not defense.wraps_metric else [image_id], fmt)
    xa = inp[j if not defense.wraps_metric else 0].detach().float().cpu()
    stored_att, stored_def = _finite(adv_rows[image_id].get("psnr_attack")), _finite(def_rows[image_id].get("psnr_def_adv"))
    got_att = pair_psnr(xa, x) if xa.shape == x.shape else math.nan
    record["psnr"] = {"attack": {"stored": stored_att, "here": got_att}, "def_adv": {"stored": stored_def}}
    if xa.shape != x.shape or _checked("x'", got_att, stored_att):
        record["why"] = (f"the attacked image {image_id} does not match the dataset's image here "
                         f"(PSNR(x, x') {got_att:.2f} dB, stored {stored_att:.2f} dB): no images stored")
        return record

    purified = None
    if defense.wraps_metric:
        record["why_purified"] = "the defense scores x' through its own model or noisy copies and leaves the image as it is"
    else:
        gen = torch.Generator().manual_seed(defense_seed(ctx, cell, ids))
        inp = inp.to(ctx.device)
        with torch.no_grad():
            out = defense(inp, generator=gen).clamp(0, 1)
        if torch.equal(out, inp):
            record["why_purified"] = "the defense leaves x' as it is (D(x') = x')"
        else:
            d = resize_to(out[j:j + 1].detach().float().cpu(), x[None])[0]
            got_def = pair_psnr(d, x)
            record["psnr"]["def_adv"]["here"] = got_def
            record["why_purified"] = _checked("D(x')", got_def, stored_def)
            purified = None if record["why_purified"] else d
    record["changes_geometry"] = bool(defense.changes_geometry)

    amp = amplification((xa - x).abs())
    region = largest_region(xa - x)
    panels = {"clean": (x, MAX_SIDE), "attacked": (xa, MAX_SIDE), "diff_attacked": (difference(xa, x, amp), MAX_SIDE),
              "zoom": (crops([x, xa] + ([purified] if purified is not None else []), region), None)}
    record.update(amp={"attacked": amp}, linf={"attacked": float((xa - x).abs().max())}, region=list(region))
    if purified is not None:
        amp_d = amplification((purified - x).abs())
        panels["purified"] = (purified, MAX_SIDE)
        panels["diff_purified"] = (difference(purified, x, amp_d), MAX_SIDE)
        record["amp"]["purified"] = amp_d
        record["linf"]["purified"] = float((purified - x).abs().max())
    for name, (t, side) in panels.items():
        data, w, h = png(t, side)
        ctx.store.save_image_bytes("strip", stage.key, name, data, "png")
        record["files"][name] = {"file": ctx.store.image_path("strip", stage.key, name, "png").name,
                                 "width": w, "height": h, "bytes": len(data)}
    return record


KIND = StageKind(name="strip", deps=("attack", "def_adv"), uses_metric=True, run=run,
                 doc="the images of the cell's report strip (x, x', D(x'), differences, zoom), stored as PNG")

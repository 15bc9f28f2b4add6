"""Train the project's default NR model (colour CNNIQA) and write its weights and model card.

    python -m benchmark.training.default_model [--epochs 40] [--live1 DIR]

Training data: scikit-image's training photographs (``synthetic`` dataset, ``split="train"``), each
with all six distortions at all five levels plus the pristine image, labelled with
``100 · (MS-SSIM + FSIM) / 2`` against the pristine image. Like CNNIQA, every 32×32 patch of an image
is trained towards the image's label with an L1 loss; each epoch takes a fresh random crop offset.
Held-out evaluation: the ``synthetic`` test photographs, and (when present) the 29 LIVE reference
photographs distorted the same way. Deterministic for a given seed on one machine.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from ..images import read_image
from ..metrics.cnniqa import CNNIQAModel, extract_patches, local_normalise
from ..metrics.default_model import WEIGHTS
from ..photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo
from .trainset import build_set

log = logging.getLogger(__name__)


def evaluate(model: CNNIQAModel, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + 32]) for i in range(0, len(images), 32)])
    p, y = pred.numpy(), labels.numpy()
    return {"n_images": int(len(y)), "srocc": float(stats.spearmanr(p, y)[0]),
            "plcc": float(stats.pearsonr(p, y)[0]), "mae": float(np.abs(p - y).mean())}


def train(epochs: int, seed: int, lr: float = 1e-3, size: int = 288, crop: int = 256) -> tuple[CNNIQAModel, dict]:
    torch.manual_seed(seed)
    train_x, train_y = build_set({n: load_photo(n) for n in TRAIN_PHOTOS}, size, [1, 2, 3, 4, 5])
    model = CNNIQAModel(in_channels=3)
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        top, left = torch.randint(0, size - crop + 1, (2,), generator=gen).tolist()
        patches = extract_patches(train_x[:, :, top:top + crop, left:left + crop])
        n_img, n_p = patches.shape[:2]
        flat = local_normalise(patches.reshape(n_img * n_p, *patches.shape[2:]))
        target = train_y.repeat_interleave(n_p)
        order = torch.randperm(len(flat), generator=gen)
        total = 0.0
        for i in range(0, len(flat), 256):
            idx = order[i:i + 256]
            loss = torch.nn.functional.l1_loss(model.net(flat[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        sched.step()
        log.info("epoch %d/%d  L1 %.3f", epoch + 1, epochs, total / len(flat))
    model.eval()
    return model, {"train": evaluate(model, train_x[:, :, :crop, :crop], train_y)}


def model_card(meta: dict) -> str:
    rows = "\n".join(f"| {name} | {r['n_images']} | {r['srocc']:.3f} | {r['plcc']:.3f} | {r['mae']:.2f} |"
                     for name, r in meta["results"].items())
    return f"""# Model card: the default NR model (`metrics.name = "default"`)

- **Architecture**: CNNIQA (Kang et al., CVPR 2014) with 3 input channels: 32×32 patches, local
  normalisation per channel, conv 7×7 (50) → max/min pooling → FC 800 → FC 800 → 1; image score = mean
  of patch scores. About 0.73 M parameters, stored in fp16.
- **Target**: `{meta['label']}` of a distorted image against its pristine version; higher is better,
  range [0, 100]. A full-reference proxy, **not** human opinion scores.
- **Training data**: scikit-image photographs {', '.join(meta['train_photos'])}, each pristine and with
  six distortions (noise, blur, JPEG, contrast, saturation, darkening) at five levels, 288×288, random
  256×256 crops; L1 loss on every patch; Adam (lr {meta.get('lr', 1e-3)}), cosine schedule, {meta['epochs']}
  epochs, seed {meta['seed']}.
- **Reproduce**: `python -m benchmark.training.default_model --epochs {meta['epochs']} --lr {meta.get('lr', 1e-3)}`
  ({meta['seconds']:.0f} s on the machine that trained it: {meta['machine']}, torch {meta['torch']}).

## Agreement with the target

| images | n | SROCC | PLCC | MAE |
| --- | --- | --- | --- | --- |
{rows}

`heldout_skimage`: photographs {', '.join(meta['test_photos'])} (never seen in training), 5 levels.
`heldout_live1`: the 29 LIVE reference photographs, distortion levels 2 and 4.

## What it is for, and not

It makes the quickstart attack a real, learned, differentiable NR model offline, so every stage of the
benchmark does real work. Its correlation with its target is modest and it never saw subjective scores:
do not report it as a quality metric. It is blind to some distortions a human sees (it only looks at
local patch statistics), which is typical of patch-based NR models and is part of why they are easy to
attack.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--live1", type=Path, default=None,
                    help="folder of the 29 reference photographs of the LIVE IQA database (PNG) for a held-out "
                         "evaluation (left out when not given)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.time()
    model, results = train(args.epochs, args.seed, args.lr)
    test_x, test_y = build_set({n: load_photo(n) for n in TEST_PHOTOS}, 256, [1, 2, 3, 4, 5])
    results["heldout_skimage"] = evaluate(model, test_x, test_y)
    if args.live1 is not None and args.live1.is_dir():
        photos = {p.stem: read_image(p) for p in sorted(args.live1.glob("*.png"))}
        live_x, live_y = build_set(photos, 256, [2, 4])
        results["heldout_live1"] = evaluate(model, live_x, live_y)
    else:
        log.warning("no LIVE reference folder (--live1 %s): the LIVE held-out evaluation is left out", args.live1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() for k, v in model.net.state_dict().items()}, args.out)
    meta = {"epochs": args.epochs, "seed": args.seed, "lr": args.lr, "train_photos": list(TRAIN_PHOTOS),
            "test_photos": list(TEST_PHOTOS), "label": "100 * (MS-SSIM + FSIM) / 2 (pyiqa)",
            "results": results, "seconds": round(time.time() - t0, 1), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine()}
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    args.out.with_name("DEFAULT_MODEL_CARD.md").write_text(model_card(meta))
    log.info("wrote %s; %s", args.out, json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The runner's attack stage (PGD + re-score + quality measures) against a hand-written PGD loop + PSNR/SSIM.

    python benchmarks/attack_stage_speed.py [--images 8] [--size 256] [--steps 10] [--batch 4] [--repeats 3]
                                            [--threads 1] [--device cpu]

Both run on the same images (scikit-image photographs in an image folder, the default model, PGD L∞
eps = 4/255 with a random start), batch by batch, timed alternately (interleaved repeats: load on a
shared machine hits both alike). The runner side is ``Runner._attack`` (the stage's body: images read
from their files batch by batch, attack, 8-bit quantisation, re-score, PSNR/SSIM/MS-SSIM, L∞/L2, each x'
written as a PNG file, records, inside the model-pass accounting that ``Runner._stage`` wraps it in;
storing the stage's JSON is not timed); the hand-written side is the textbook loop on images held in memory (``steps`` forward+backward passes and one final forward pass) with PSNR and SSIM
(``benchmark.quality``'s float32 ones, pyiqa's definitions). A forward hook counts the images through the
metric (forward) and through its gradient (backward) against the minimum: ``steps + 1`` forwards and
``steps`` backwards per image. Figures: time ratio of the stage to the loop (target ≤ 1.10), of the
attack alone to the loop's attack alone (each as the ratio of median wall-clock times, of the fastest
runs, and of median process CPU times: on a loaded machine the last two are the steadier), and the pass
ratios (target 1.00). Writes
benchmarks/results/attack_stage_speed.json with machine metadata.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import timed, write_json  # noqa: E402

from benchmark import passes, quality  # noqa: E402
from benchmark.config import load_config  # noqa: E402
from benchmark.photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo, square  # noqa: E402
from benchmark.images import batches  # noqa: E402
from benchmark.runner import Runner, plan  # noqa: E402

EPS = 4 / 255


class PassCounter:
    """Images through the metric's forward, and through its backward (a hook on the output)."""

    def __init__(self, metric: torch.nn.Module):
        self.forward = self.backward = 0
        self.handle = metric.register_forward_hook(self._on_forward)

    def _on_forward(self, module, args, output) -> None:
        n = args[0].shape[0]
        self.forward += n
        if torch.is_tensor(output) and output.requires_grad:
            output.register_hook(partial(self._on_backward, n))

    def _on_backward(self, n: int, grad: torch.Tensor) -> None:
        self.backward += n

    def take(self) -> tuple[int, int]:
        out = (self.forward, self.backward)
        self.forward = self.backward = 0
        return out


def hand_pgd(metric, x: torch.Tensor, steps: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Textbook PGD-L∞ raising the predicted quality (random start, sign steps, projection); its scores."""
    alpha, sign = 2.5 * EPS / steps, float(metric.sign)
    adv = (x + EPS * (torch.rand(x.shape, generator=generator).to(x.device) * 2 - 1)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        (g,) = torch.autograd.grad((sign * metric(adv)).sum(), adv)
        adv = torch.min(torch.max(adv.detach() + alpha * g.sign(), x - EPS), x + EPS).clamp(0, 1)
    with torch.no_grad():
        return adv, metric(adv)


def hand_stage(metric, images, batch: int, steps: int, device, quality_too: bool = True) -> list[dict]:
    gen, rows = torch.Generator().manual_seed(0), []
    for b in batches(images, batch):
        x = torch.stack([x for _, x, _ in b]).to(device)
        adv, s = hand_pgd(metric, x, steps, gen)
        if quality_too:
            p, q = quality.psnr(adv, x), quality.ssim(adv, x)
            rows += [{"image_id": i, "score_adv": float(s[j]), "psnr": float(p[j]), "ssim": float(q[j])}
                     for j, (i, _, _) in enumerate(b)]
    return rows


def attack_only(attack, metric, images, batch: int, device) -> None:
    gen = torch.Generator().manual_seed(0)
    for b in batches(images, batch):
        attack(metric, torch.stack([x for _, x, _ in b]).to(device), generator=gen)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attack_stage_speed.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="attack-stage-"))
    folder = tmp / "images"
    folder.mkdir()
    photos = (TEST_PHOTOS + TRAIN_PHOTOS) * (args.images // 14 + 1)
    for k, name in enumerate(photos[: args.images]):
        arr = (square(load_photo(name), args.size) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(folder / f"{k:03d}-{name}.png")
    (tmp / "matrix.toml").write_text(f"""
[run]
name = "attack-stage"
output_dir = "{tmp / 'runs'}"
device = "{args.device}"
batch_size = {args.batch}
image_size = {args.size}

[[datasets]]
name = "folder"
root = "{folder}"

[[metrics]]
name = "default"

[[attacks]]
name = "pgd"
eps = "4/255"
steps = {args.steps}

[[defenses]]
name = "identity"
""")
    cfg = load_config(tmp / "matrix.toml")
    cell = plan(cfg)[0]
    runner = Runner(cfg, tmp / "runs" / "attack-stage", progress=False)
    source = runner.open_images(cell.dataset)  # the stage streams it from the files, PNG-saves x' and reads no
    images = [(i, b.x[j], m) for b in source.batches(args.batch) for j, (i, m) in enumerate(zip(b.ids, b.mos))]
    metric = runner.build_metric(cell.metric)   # ... while the hand-written loop gets the images in memory
    counter = PassCounter(metric)
    attack = cell.attack.build()
    n = len(images)

    graph = runner.prepare(plan(cfg))
    attack_stage = graph[cell.keys["attack"]]

    def stage():  # as Runner.compute runs it: the attack stage's function inside the model-pass accounting
        with passes.counting():
            return runner.kinds["attack"].run(runner.ctx, attack_stage)

    def hand():
        return hand_stage(metric, images, args.batch, args.steps, device)

    # passes, once each (counts do not depend on timing)
    stage()
    stage_passes = counter.take()
    hand()
    hand_passes = counter.take()
    attack_only(attack, metric, images, args.batch, device)
    attack_passes = counter.take()
    minimum = (n * (args.steps + 1), n * args.steps)

    fns = {"stage": stage, "hand": hand,
           "attack_alone": lambda: attack_only(attack, metric, images, args.batch, device),
           "hand_attack_alone": lambda: hand_stage(metric, images, args.batch, args.steps, device, quality_too=False)}
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            wall, c, _ = timed(fn, device)
            times[k].append(wall), cpu[k].append(c)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    counter.handle.remove()
    out = {
        "device": str(device), "images": n, "size": args.size, "steps": args.steps, "batch": args.batch,
        "repeats": args.repeats, "threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
        "seconds": med, "all_seconds": times, "cpu_seconds": med_cpu, "all_cpu_seconds": cpu,
        "stage_over_hand": med["stage"] / med["hand"],
        "stage_over_hand_min": best["stage"] / best["hand"],
        "stage_over_hand_cpu": med_cpu["stage"] / med_cpu["hand"],
        "attack_alone_over_hand_attack_alone": med["attack_alone"] / med["hand_attack_alone"],
        "attack_alone_over_hand_attack_alone_min": best["attack_alone"] / best["hand_attack_alone"],
        "attack_alone_over_hand_attack_alone_cpu": med_cpu["attack_alone"] / med_cpu["hand_attack_alone"],
        "passes": {"minimum": {"forward": minimum[0], "backward": minimum[1]},
                   "stage": {"forward": stage_passes[0], "backward": stage_passes[1]},
                   "attack_alone": {"forward": attack_passes[0], "backward": attack_passes[1]},
                   "hand": {"forward": hand_passes[0], "backward": hand_passes[1]},
                   "stage_forward_ratio": stage_passes[0] / minimum[0],
                   "stage_backward_ratio": stage_passes[1] / minimum[1],
                   "stage_reused_attack_scores": stage_passes[0] == attack_passes[0]},
    }
    print(f"{n} images {args.size}px, PGD {args.steps} steps, batch {args.batch}, {out['threads']} thread(s)")
    print(f"stage {med['stage']:.2f} s vs hand-written loop + PSNR/SSIM {med['hand']:.2f} s (medians): "
          f"{out['stage_over_hand']:.2f}x; fastest runs {out['stage_over_hand_min']:.2f}x; CPU time "
          f"{out['stage_over_hand_cpu']:.2f}x (target <= 1.10)")
    print(f"attack alone {med['attack_alone']:.2f} s vs hand-written PGD alone {med['hand_attack_alone']:.2f} s: "
          f"{out['attack_alone_over_hand_attack_alone']:.2f}x; fastest runs "
          f"{out['attack_alone_over_hand_attack_alone_min']:.2f}x; CPU time "
          f"{out['attack_alone_over_hand_attack_alone_cpu']:.2f}x")
    print(f"passes (images): stage forward {stage_passes[0]} / minimum {minimum[0]} = "
          f"{out['passes']['stage_forward_ratio']:.2f}x, backward {stage_passes[1]} / {minimum[1]} = "
          f"{out['passes']['stage_backward_ratio']:.2f}x (target 1.00); hand {hand_passes}")
    write_json(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Convert an OpenAI guided-diffusion (ADM) checkpoint into a diffusers model directory (``unet/``, ``scheduler/``)
for the ``diffusion_smoothing`` and ``diffpure`` defenses.

    python -m benchmark.tools.convert_adm 256x256_diffusion_uncond.pt models/adm256-uncond

ADM: Dhariwal & Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021; code and checkpoints
at https://github.com/openai/guided-diffusion (``guided_diffusion/unet.py``: ``UNetModel``). The unconditional
256×256 model (https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt, the
one the certified IQA study katiashh/certified-iqa-defenses uses) has the flags ``--attention_resolutions
32,16,8 --class_cond False --diffusion_steps 1000 --image_size 256 --learn_sigma True --noise_schedule
linear --num_channels 256 --num_head_channels 64 --num_res_blocks 2 --resblock_updown True
--use_scale_shift_norm True``: these are the defaults here. Everything else is read from the checkpoint's
tensors (channels, channel multipliers, residual blocks per level, attention levels, resblock or conv
resampling, scale-shift norm, learned variance); only the attention head width
(``--num-head-channels``), the qkv layout (``--new-attention-order``) and the noise schedule are flags.

The network maps one to one onto diffusers' ``UNet2DModel`` (ResBlock → ``ResnetBlock2D`` with
``time_embedding_norm = "scale_shift"``, up/down ResBlocks → ``ResnetDownsampleBlock2D`` /
``ResnetUpsampleBlock2D`` or the attention blocks' ``"resnet"`` resamplers, AttentionBlock → ``Attention``
with its fused qkv 1×1 convolution split per head into ``to_q``/``to_k``/``to_v``, timestep embedding
``[cos, sin]`` = ``flip_sin_to_cos``). Every tensor of the checkpoint is used and every parameter of the
UNet is filled (strict loading); ``tests/tools/test_convert_adm.py`` checks the outputs against
guided-diffusion's own ``UNetModel`` where that package is importable. The scheduler is a
``DDPMScheduler`` with the checkpoint's schedule and, for ``learn_sigma`` models (6 output channels),
``variance_type = "learned_range"``. Class-conditional checkpoints and fixed head counts
(``--num_heads`` without ``--num_head_channels``) are not supported.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import BenchmarkError, MissingWeightsError

log = logging.getLogger(__name__)
ADM_URL = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt"
RES = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj", "out_layers.0": "norm2",
       "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


@dataclass
class AdmStructure:
    in_channels: int
    out_channels: int
    model_channels: int
    channel_mult: list[int]
    num_res_blocks: int
    attention_levels: list[int]
    resblock_updown: bool
    scale_shift: bool


def _blocks(sd: dict, prefix: str) -> int:
    return 1 + max(int(m.group(1)) for k in sd if (m := re.match(rf"{prefix}\.(\d+)\.", k)))


def infer_structure(sd: dict[str, torch.Tensor]) -> AdmStructure:
    """The UNet's structure from its tensors (guided_diffusion.unet.UNetModel's construction, inverted)."""
    if "label_emb.weight" in sd:
        raise BenchmarkError("class-conditional ADM checkpoints are not supported (label_emb.weight present)")
    if "input_blocks.0.0.weight" not in sd or "out.2.weight" not in sd:
        raise BenchmarkError("not a guided-diffusion UNetModel state dict (no input_blocks.0.0 / out.2 weights)")
    mc, cin = sd["input_blocks.0.0.weight"].shape[:2]
    n_out = _blocks(sd, "output_blocks")
    # the first output block with a resampler after its ResBlock (and attention) ends the deepest level
    nrb = next(k for k in range(n_out) if any(re.match(rf"output_blocks\.{k}\.[12]\.(in_layers|conv)\.", key)
                                              for key in sd))
    levels = n_out // (nrb + 1)
    mult = [sd[f"output_blocks.{(levels - 1 - lv) * (nrb + 1)}.0.out_layers.3.weight"].shape[0] // mc
            for lv in range(levels)]
    attention = [lv for lv in range(levels) if f"output_blocks.{(levels - 1 - lv) * (nrb + 1)}.1.qkv.weight" in sd]
    return AdmStructure(
        in_channels=int(cin), out_channels=int(sd["out.2.weight"].shape[0]), model_channels=int(mc),
        channel_mult=mult, num_res_blocks=nrb, attention_levels=attention,
        resblock_updown=f"input_blocks.{nrb + 1}.0.in_layers.0.weight" in sd,
        scale_shift=sd["input_blocks.1.0.emb_layers.1.weight"].shape[0] == 2 * mult[0] * mc)


def unet_config(s: AdmStructure, image_size: int, head_channels: int) -> dict:
    """``UNet2DModel`` keyword arguments of the same network."""
    resample = "resnet" if s.resblock_updown else "conv"
    down, up = ("ResnetDownsampleBlock2D", "ResnetUpsampleBlock2D") if s.resblock_updown else ("DownBlock2D",
                                                                                             "UpBlock2D")
    levels = range(len(s.channel_mult))
    return {
        "sample_size": image_size, "in_channels": s.in_channels, "out_channels": s.out_channels,
        "block_out_channels": [m * s.model_channels for m in s.channel_mult], "layers_per_block": s.num_res_blocks,
        "down_block_types": ["AttnDownBlock2D" if lv in s.attention_levels else down for lv in levels],
        "up_block_types": ["AttnUpBlock2D" if lv in s.attention_levels else up for lv in reversed(levels)],
        "downsample_type": resample, "upsample_type": resample, "attention_head_dim": head_channels,
        "norm_num_groups": 32, "attn_norm_num_groups": 32, "norm_eps": 1e-5,
        "resnet_time_scale_shift": "scale_shift" if s.scale_shift else "default", "flip_sin_to_cos": True,
        "freq_shift": 0, "act_fn": "silu", "dropout": 0.0}


def convert_state_dict(sd: dict[str, torch.Tensor], s: AdmStructure, head_channels: int,
                       new_attention_order: bool = False) -> dict[str, torch.Tensor]:
    """guided-diffusion tensor names and layouts → ``UNet2DModel``'s; raises if a tensor is left unused."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(src: str, dst: str) -> None:
        for suffix in ("weight", "bias"):
            if f"{src}.{suffix}" in sd:
                out[f"{dst}.{suffix}"] = sd[f"{src}.{suffix}"].float()
                used.add(f"{src}.{suffix}")

    def resblock(src: str, dst: str) -> None:
        for a, b in RES.items():
            take(f"{src}.{a}", f"{dst}.{b}")

    def attention(src: str, dst: str) -> None:
        take(f"{src}.norm", f"{dst}.group_norm")
        w, b = sd[f"{src}.qkv.weight"].float()[..., 0], sd[f"{src}.qkv.bias"].float()
        c = w.shape[1]
        # legacy layout: per head [q, k, v] (QKVAttentionLegacy); new order: [q | k | v] (QKVAttention)
        shape = (3, c) if new_attention_order else (c // head_channels, 3, head_channels)
        w, b = w.reshape(*shape, c), b.reshape(*shape)
        for i, name in enumerate(("to_q", "to_k", "to_v")):
            out[f"{dst}.{name}.weight"] = (w[i] if new_attention_order else w[:, i]).reshape(c, c)
            out[f"{dst}.{name}.bias"] = (b[i] if new_attention_order else b[:, i]).reshape(c)
        out[f"{dst}.to_out.0.weight"] = sd[f"{src}.proj_out.weight"].float()[..., 0]
        out[f"{dst}.to_out.0.bias"] = sd[f"{src}.proj_out.bias"].float()
        used.update(f"{src}.{k}.{p}" for k in ("qkv", "proj_out") for p in ("weight", "bias"))

    def resampler(src: str, dst: str) -> None:
        if s.resblock_updown:
            resblock(src, dst)
        else:
            take(f"{src}.op" if f"{src}.op.weight" in sd else f"{src}.conv", f"{dst}.conv")

    take("time_embed.0", "time_embedding.linear_1")
    take("time_embed.2", "time_embedding.linear_2")
    take("input_blocks.0.0", "conv_in")
    n, k = len(s.channel_mult), 1
    for lv in range(n):
        for j in range(s.num_res_blocks):
            resblock(f"input_blocks.{k}.0", f"down_blocks.{lv}.resnets.{j}")
            if lv in s.attention_levels:
                attention(f"input_blocks.{k}.1", f"down_blocks.{lv}.attentions.{j}")
            k += 1
        if lv < n - 1:
            resampler(f"input_blocks.{k}.0", f"down_blocks.{lv}.downsamplers.0")
            k += 1
    resblock("middle_block.0", "mid_block.resnets.0")
    attention("middle_block.1", "mid_block.attentions.0")
    resblock("middle_block.2", "mid_block.resnets.1")
    k = 0
    for u, lv in enumerate(reversed(range(n))):
        attn = lv in s.attention_levels
        for i in range(s.num_res_blocks + 1):
            resblock(f"output_blocks.{k}.0", f"up_blocks.{u}.resnets.{i}")
            if attn:
                attention(f"output_blocks.{k}.1", f"up_blocks.{u}.attentions.{i}")
            if lv and i == s.num_res_blocks:
                resampler(f"output_blocks.{k}.{2 if attn else 1}", f"up_blocks.{u}.upsamplers.0")
            k += 1
    take("out.0", "conv_norm_out")
    take("out.2", "conv_out")
    left = sorted(set(sd) - used)
    if left:
        raise BenchmarkError(f"{len(left)} checkpoint tensors have no place in the converted UNet, e.g. {left[:3]}")
    return out


def scheduler_config(s: AdmStructure, steps: int, schedule: str) -> dict:
    """``DDPMScheduler`` of guided-diffusion's ``create_gaussian_diffusion`` (linear: β from 0.1/T to 20/T)."""
    if schedule == "linear":
        sched = {"beta_schedule": "linear", "beta_start": 0.0001 * 1000 / steps, "beta_end": 0.02 * 1000 / steps}
    else:
        sched = {"beta_schedule": "squaredcos_cap_v2"}
    learned = s.out_channels == 2 * s.in_channels
    return {"num_train_timesteps": steps, "variance_type": "learned_range" if learned else "fixed_large",
            "clip_sample": True, "prediction_type": "epsilon", **sched}


def convert(checkpoint: Path, out_dir: Path, *, image_size: int = 256, head_channels: int = 64,
            new_attention_order: bool = False, steps: int = 1000, schedule: str = "linear") -> Path:
    """Write ``out_dir/unet`` and ``out_dir/scheduler`` from a guided-diffusion checkpoint."""
    from diffusers import DDPMScheduler, UNet2DModel

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise MissingWeightsError("convert_adm", str(checkpoint), f"OpenAI's unconditional 256x256 ADM is {ADM_URL}")
    sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    s = infer_structure(sd)
    widths = [m * s.model_channels for m in s.channel_mult]
    if any(w % head_channels for w in widths):
        raise BenchmarkError(f"--num-head-channels {head_channels} does not divide the widths {widths}")
    unet = UNet2DModel(**unet_config(s, image_size, head_channels))
    unet.load_state_dict(convert_state_dict(sd, s, head_channels, new_attention_order), strict=True)
    out_dir = Path(out_dir)
    unet.save_pretrained(out_dir / "unet")
    DDPMScheduler(**scheduler_config(s, steps, schedule)).save_pretrained(out_dir / "scheduler")
    h = hashlib.sha256()
    with open(checkpoint, "rb") as fh:  # in 1 MiB blocks: the ADM checkpoint is 2 GB
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    (out_dir / "converted_from.json").write_text(json.dumps(
        {"checkpoint": str(checkpoint.resolve()), "sha256": digest, "structure": asdict(s),
         "num_head_channels": head_channels, "new_attention_order": new_attention_order,
         "diffusion_steps": steps, "noise_schedule": schedule}, indent=2))
    log.info("wrote %s (%d parameters) from %s", out_dir, sum(p.numel() for p in unet.parameters()), checkpoint)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="guided-diffusion state dict, e.g. 256x256_diffusion_uncond.pt")
    ap.add_argument("out_dir", type=Path, help="diffusers model directory to write (unet/, scheduler/)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--num-head-channels", type=int, default=64)
    ap.add_argument("--new-attention-order", action="store_true", help="checkpoint trained with QKVAttention")
    ap.add_argument("--diffusion-steps", type=int, default=1000)
    ap.add_argument("--noise-schedule", choices=["linear", "cosine"], default="linear")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        convert(args.checkpoint, args.out_dir, image_size=args.image_size, head_channels=args.num_head_channels,
                new_attention_order=args.new_attention_order, steps=args.diffusion_steps,
                schedule=args.noise_schedule)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

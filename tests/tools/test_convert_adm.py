"""The guided-diffusion (ADM) checkpoint converter (benchmark/tools/convert_adm.py): a checkpoint in the
official key layout becomes a diffusers folder that diffpure and diffusion_smoothing load; a tensor it cannot
place and a missing file are errors; with openai/guided-diffusion importable, the converted UNet equals the
original."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from helpers.images import batch

diffusers = pytest.importorskip("diffusers", reason="diffusers not installed (pip install -e '.[diffpure]')")


# -- guided-diffusion (ADM) checkpoints ----------------------------------------------------------------
def adm_state_dict(mc=32, mult=(1, 2, 2), nrb=1, attention_levels=(1, 2), heads_ch=16, out=6, updown=True,
                   seed=0):
    """Random tensors under guided-diffusion's UNetModel names and shapes (guided_diffusion/unet.py; scale-shift
    norm, learned sigma): the official checkpoint key layout, written out from the constructor."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def t(name, *shape):
        sd[name] = torch.randn(shape, generator=g) * 0.1

    def lin(name, i, o, k=()):
        t(f"{name}.weight", o, i, *k)
        t(f"{name}.bias", o)

    def res(p, i, o):
        t(f"{p}.in_layers.0.weight", i), t(f"{p}.in_layers.0.bias", i)
        lin(f"{p}.in_layers.2", i, o, (3, 3))
        lin(f"{p}.emb_layers.1", 4 * mc, 2 * o)
        t(f"{p}.out_layers.0.weight", o), t(f"{p}.out_layers.0.bias", o)
        lin(f"{p}.out_layers.3", o, o, (3, 3))
        if i != o:
            lin(f"{p}.skip_connection", i, o, (1, 1))

    def attn(p, c):
        t(f"{p}.norm.weight", c), t(f"{p}.norm.bias", c)
        lin(f"{p}.qkv", c, 3 * c, (1,))
        lin(f"{p}.proj_out", c, c, (1,))

    lin("time_embed.0", mc, 4 * mc), lin("time_embed.2", 4 * mc, 4 * mc)
    lin("input_blocks.0.0", 3, mc, (3, 3))
    ch, chans, k = mc, [mc], 1
    for lv, m in enumerate(mult):
        for _ in range(nrb):
            res(f"input_blocks.{k}.0", ch, m * mc)
            ch = m * mc
            if lv in attention_levels:
                attn(f"input_blocks.{k}.1", ch)
            chans.append(ch)
            k += 1
        if lv < len(mult) - 1:
            res(f"input_blocks.{k}.0", ch, ch) if updown else lin(f"input_blocks.{k}.0.op", ch, ch, (3, 3))
            chans.append(ch)
            k += 1
    res("middle_block.0", ch, ch), attn("middle_block.1", ch), res("middle_block.2", ch, ch)
    k = 0
    for lv, m in reversed(list(enumerate(mult))):
        for i in range(nrb + 1):
            res(f"output_blocks.{k}.0", ch + chans.pop(), m * mc)
            ch = m * mc
            j = 1
            if lv in attention_levels:
                attn(f"output_blocks.{k}.1", ch)
                j = 2
            if lv and i == nrb:
                res(f"output_blocks.{k}.{j}", ch, ch) if updown else lin(f"output_blocks.{k}.{j}.conv", ch, ch, (3, 3))
            k += 1
    t("out.0.weight", ch), t("out.0.bias", ch)
    lin("out.2", mc, out, (3, 3))
    return sd


def test_convert_adm_writes_a_directory_the_defenses_load(tmp_path):
    from benchmark.defenses.diffpure import DiffPure
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing
    from benchmark.tools.convert_adm import main as convert_main

    torch.save(adm_state_dict(), tmp_path / "adm.pt")
    assert convert_main([str(tmp_path / "adm.pt"), str(tmp_path / "adm"), "--image-size", "32",
                         "--num-head-channels", "16"]) == 0
    cfg = diffusers.UNet2DModel.load_config(tmp_path / "adm" / "unet")
    assert cfg["block_out_channels"] == [32, 64, 64] and cfg["out_channels"] == 6
    assert cfg["down_block_types"] == ["ResnetDownsampleBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]
    d = DiffusionSmoothing(model=tmp_path / "adm", sigma=0.12, n=4)
    assert d.scheduler.config.variance_type == "learned_range" and d.t_star == 70
    x = batch(1, size=32)
    assert d(x, generator=torch.Generator().manual_seed(0)).shape == x.shape
    assert DiffPure(model_dir=tmp_path / "adm", t_star=3)(x, generator=torch.Generator()).shape == x.shape
    # a tensor the converter cannot place, and a missing file, are errors (exit status 2)
    sd = adm_state_dict()
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    assert convert_main([str(tmp_path / "bad.pt"), str(tmp_path / "bad"), "--num-head-channels", "16"]) == 2
    assert convert_main([str(tmp_path / "none.pt"), str(tmp_path / "none")]) == 2


@pytest.mark.skipif(importlib.util.find_spec("guided_diffusion") is None,
                    reason="needs openai/guided-diffusion importable (PYTHONPATH=<checkout>)")
@pytest.mark.parametrize("updown,new_order", [(True, False), (False, True)])
def test_converted_unet_equals_guided_diffusion(updown, new_order):
    from guided_diffusion.script_util import create_model

    from benchmark.tools.convert_adm import convert_state_dict, infer_structure, unet_config

    torch.manual_seed(0)
    ref = create_model(64, 32, 1, channel_mult="1,2,2", learn_sigma=True, attention_resolutions="32,16",
                       num_head_channels=16, use_scale_shift_norm=True, resblock_updown=updown,
                       use_new_attention_order=new_order).eval()
    sd = ref.state_dict()
    if not new_order:  # the layout written out above is guided-diffusion's own
        assert {k: v.shape for k, v in adm_state_dict(updown=updown).items()} == {k: v.shape for k, v in sd.items()}
    with torch.no_grad():
        for p in ref.parameters():  # the released zero-initialised layers get weights too
            p.copy_(torch.randn_like(p) * 0.2)
    s = infer_structure(sd)
    unet = diffusers.UNet2DModel(**unet_config(s, 64, 16)).eval()
    unet.load_state_dict(convert_state_dict(sd, s, 16, new_order), strict=True)
    x, t = torch.randn(2, 3, 64, 64), torch.tensor([37, 512])
    with torch.no_grad():
        want, got = ref(x, t), unet(x, t).sample
    assert (want - got).abs().max() < 1e-4 * want.abs().max()

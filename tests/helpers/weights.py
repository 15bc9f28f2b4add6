"""Weights files for tests, with random weights, in the layouts the plugins load: the project's denoiser
checkpoint, a diffusers DDPM folder, and the official checkpoints of the reference studies' metrics.

The study metrics' layouts are built from torchvision / timm modules and the head definitions of the official
code, independently of the plugin classes (tests/metrics/test_study_metrics.py loads them back)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def save_tiny_denoiser(path: Path, sigma: float = 0.12, channels: int = 8, untrained: bool = True) -> Path:
    """A 3-layer DnCNN in the checkpoint format of ``benchmark.training.denoiser``. ``untrained``: as built, the
    identity (its last layer starts at zero); else that layer gets small random weights (seed 0), so that the
    denoiser changes the image as a trained one does."""
    from benchmark.defenses.denoiser import DnCNN, save_denoiser

    net = DnCNN(depth=3, channels=channels)
    if not untrained:
        torch.manual_seed(0)
        with torch.no_grad():
            net.body[-1].weight.normal_(0, 0.01)
    save_denoiser(net, path, {"sigma": sigma})
    return path


def save_tiny_ddpm(root: Path, scheduler=None, seed: int = 0) -> Path:
    """A random-weight UNet2DModel with a learned-variance output (6 channels, as ADM's) and a DDPM scheduler,
    saved as the folder (``unet/``, ``scheduler/``) diffpure and diffusion_smoothing load. Needs diffusers."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=6, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    unet.save_pretrained(root / "unet")
    (scheduler or DDPMScheduler(num_train_timesteps=1000, variance_type="learned_range")).save_pretrained(
        root / "scheduler")
    return root


# -- the reference studies' metrics, official layouts -----------------------------------------------------
def state_of(prefix: str, module: nn.Module) -> dict:
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}


def reducer(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c, 1024), nn.BatchNorm1d(1024), nn.Linear(1024, 256), nn.BatchNorm1d(256),
                         nn.Linear(256, 64), nn.BatchNorm1d(64), nn.ReLU())


def linearity_checkpoint(path: Path) -> Path:
    """lidq92/LinearityIQA main.py: {'model': IQAModel.state_dict(), 'optimizer', 'amp', 'k', 'b'}."""
    from torchvision.models import resnext101_32x8d

    torch.manual_seed(0)
    tv = resnext101_32x8d(weights=None)
    children = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]  # IQAModel.features
    state = {}
    for i, name in enumerate(children):
        state.update(state_of(f"features.{i}.", getattr(tv, name)))
    regression = nn.Linear(128, 1)
    regression.weight.data.mul_(0.01)
    for name, mod in (("dr6", reducer(1024)), ("dr7", reducer(2048)), ("regr6", nn.Linear(64, 1)),
                      ("regr7", nn.Linear(64, 1)), ("regression", regression)):
        state.update(state_of(f"{name}.", mod))
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "amp": {"loss_scaler0": {"loss_scale": 65536.0, "unskipped": 0}},
                "k": [10.0, 1.0, 1.0], "b": [50.0, 0.0, 0.0]}, path)
    return path


def spaq_checkpoint(path: Path) -> Path:
    """h4nwei/SPAQ BL_demo.py: {'state_dict': Baseline.state_dict()}, keys backbone.* (ResNet-50, fc 2048→1)."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    r = resnet50(weights=None)
    r.fc = nn.Linear(2048, 1)
    r.fc.weight.data.mul_(0.01)
    r.fc.bias.data.fill_(50.0)
    torch.save({"state_dict": state_of("backbone.", r), "epoch": 10}, path)
    return path


def koncept_checkpoint(path: Path) -> Path:
    """The PyTorch KonCept512 port: bare state dict, base.<i> (InceptionResNetV2 children) and fc.<i>."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=0)
    children = ["conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "maxpool_5a",
                "mixed_5b", "repeat", "mixed_6a", "repeat_1", "mixed_7a", "repeat_2", "block8", "conv2d_7b"]
    state = {}
    for i, name in enumerate(children):
        state.update(state_of(f"base.{i}.", getattr(net, name)))
    fc = nn.Sequential(nn.Linear(1536, 2048), nn.ReLU(), nn.BatchNorm1d(2048), nn.Dropout(0.25),
                       nn.Linear(2048, 1024), nn.ReLU(), nn.BatchNorm1d(1024), nn.Dropout(0.25),
                       nn.Linear(1024, 256), nn.ReLU(), nn.BatchNorm1d(256), nn.Dropout(0.5), nn.Linear(256, 1))
    fc[12].bias.data.fill_(50.0)
    state.update(state_of("fc.", fc))
    torch.save(state, path)
    return path


def metaiqa_checkpoint(path: Path) -> Path:
    """metaiqa.pth of the MSU / certified studies: bare state dict, resnet_layer.* (ResNet-18) and net.*."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    head = nn.ModuleDict({"fc1": nn.Linear(1000, 1024), "bn1": nn.BatchNorm1d(1024), "relu1": nn.PReLU(),
                          "fc2": nn.Linear(1024, 512), "bn2": nn.BatchNorm1d(512), "relu2": nn.PReLU(),
                          "fc3": nn.Linear(512, 1)})
    torch.save({**state_of("resnet_layer.", resnet18(weights=None)), **state_of("net.", head)}, path)
    return path


STUDY_CHECKPOINTS = {"linearity": linearity_checkpoint, "spaq": spaq_checkpoint, "koncept512": koncept_checkpoint,
                     "metaiqa": metaiqa_checkpoint}

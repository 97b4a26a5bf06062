"""Model registry and architectures. Pure nn.Module code: no devices, files or optimizers."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

import torch
from torch import nn

from fercli.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"did you mean {close[0]}?" if close else f"choose one of {', '.join(list_models())}"
        raise ConfigError(f"model.name: unknown model {name!r} ({hint})")
    builder = _REGISTRY[name]
    params = inspect.signature(builder).parameters
    for key in kwargs:
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"did you mean model.args.{close[0]}?" if close else f"valid: {', '.join(params)}"
            raise ConfigError(f"model.args.{key}: {name} takes no argument {key!r} ({hint})")
    return builder(**kwargs)


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SeedCNN(nn.Module):
    """The student project's model, exactly: 3x(conv3x3+BN+ReLU+maxpool), 64-128-256, MLP head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 7, input_size: int = 48):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for cout in (64, 128, 256):
            # The seed's convs keep their bias (nn.Conv2d default), so we do too.
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        flat = 256 * (input_size // 8) ** 2  # 9216 at 48x48
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(flat, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class VGG(nn.Module):
    """Plain 3x3 conv stages with BatchNorm, max-pool between stages, global average pooling."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...], depth: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                layers += conv_bn_relu(cin, cout)
                cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        )
        self.skip = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    """ResNet for small inputs: a 3x3 stem (no stride, no max-pool), BasicBlocks, global pooling."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...], blocks: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = conv_bn_relu(in_channels, widths[0])
        cin = widths[0]
        for i, cout in enumerate(widths):
            for j in range(blocks):
                layers.append(BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def seed_cnn(in_channels: int = 1, num_classes: int = 7, input_size: int = 48) -> nn.Module:
    return SeedCNN(in_channels, num_classes, input_size)


@register_model
def vgg(
    in_channels: int = 1,
    num_classes: int = 7,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    depth: int = 2,
    dropout: float = 0.3,
) -> nn.Module:
    return VGG(in_channels, num_classes, tuple(widths), depth, dropout)


@register_model
def resnet(
    in_channels: int = 1,
    num_classes: int = 7,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    blocks: int = 2,
    dropout: float = 0.2,
) -> nn.Module:
    return ResNet(in_channels, num_classes, tuple(widths), blocks, dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

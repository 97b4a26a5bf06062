import pytest
import torch

from fercli.errors import ConfigError
from fercli.model.nets import count_parameters, create_model, list_models


def test_registry_lists_and_builds():
    assert {"seed_cnn", "vgg", "resnet"} <= set(list_models())
    for name in list_models():
        model = create_model(name, num_classes=7)
        out = model(torch.randn(2, 1, 48, 48))
        assert out.shape == (2, 7)


def test_seed_cnn_is_the_seed_architecture():
    model = create_model("seed_cnn")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 128, 256]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [(l.in_features, l.out_features) for l in linears] == [(9216, 128), (128, 7)]
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules()) == 1
    assert count_parameters(model) == 1_551_239


def test_width_and_depth_come_from_arguments():
    small = create_model("vgg", widths=(8, 16), depth=1)
    big = create_model("vgg", widths=(8, 16), depth=2)
    assert count_parameters(big) > count_parameters(small)


def test_unknown_names_suggest():
    with pytest.raises(ConfigError, match="did you mean vgg"):
        create_model("vgg16x")
    with pytest.raises(ConfigError, match="did you mean model.args.widths"):
        create_model("vgg", width=(8,))

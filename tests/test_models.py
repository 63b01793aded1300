"""Model registry: every name builds for every method and runs forward/backward; connection counts
match the papers' tables; BatchNorm is non-affine for selection methods; `hiddenlab models --json`."""

import json
import subprocess
import sys

import pytest
import torch

from hiddenlab.models import MODELS, build_model, count_params
from hiddenlab.models.selection import METHODS, SelectionLayer
from hiddenlab.config import ConfigError, TrialConfig

METHOD_NAMES = [m for m in METHODS if m != "finetune"]


def test_param_counts_match_papers():
    # edge-popup Table 1 / torchvision (weights only)
    assert count_params("conv2") == 4_300_992
    assert count_params("conv4") == 2_425_024
    assert count_params("conv6") == 2_261_184
    assert count_params("conv8") == 5_275_840
    assert count_params("fc") == 784 * 300 + 300 * 100 + 100 * 10
    assert count_params("lenet-300-100") == count_params("fc")
    assert count_params("slot-conv2") == 3 * 64 * 9 + 64 * 64 * 9 + 64 * 14 * 14 * 256 + 256 * 256 + 2560
    assert count_params("slot-conv6") == (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 +
                                          256 * 256) * 9 + 256 * 4 * 256 + 256 * 256 + 2560
    import torchvision
    for name, tv in (("resnet18", "resnet18"), ("resnet50", "resnet50"),
                     ("wide-resnet50-2", "wide_resnet50_2"), ("resnet101", "resnet101")):
        ref = getattr(torchvision.models, tv)()
        n = sum(m.weight.numel() for m in ref.modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
        assert count_params(name) == n, name
    # published sub-network sizes at k = 30%: 7.7M, 13.3M, 20.6M
    assert round(0.3 * count_params("resnet50") / 1e6, 1) == 7.7
    assert round(0.3 * count_params("resnet101") / 1e6, 1) == 13.3
    assert round(0.3 * count_params("wide-resnet50-2") / 1e6, 1) == 20.6


def test_depth_and_width():
    assert count_params("conv", depth=6) == count_params("conv6")
    assert count_params("conv", depth=10) > count_params("conv8")
    assert count_params("slot-conv", depth=4) == count_params("slot-conv4")
    w2 = count_params("conv4", width_mult=2.0)
    assert 3.5 < w2 / count_params("conv4") < 4.1  # widths double: ~4x connections


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_with_every_method(name, method):
    spec = MODELS[name]
    small = spec.input_shape if spec.input_shape[1] <= 32 else (3, 64, 64)
    kw = dict(K=2) if method.startswith("slot") else {}
    cfg = TrialConfig(method=method, model=name, width_mult=0.125, **kw)
    torch.manual_seed(0)
    model = build_model(cfg, small, 10)
    x = torch.randn(2, *small)
    model(x).sum().backward()
    layers = [m for m in model.modules() if isinstance(m, SelectionLayer)]
    expected = "slot" if method.startswith("slot") else method
    assert layers and all(layer.method == expected for layer in layers)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert bn.affine == (method == "dense") and bn.track_running_stats
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if method == "dense":
        assert all(n.endswith(("weight", "bias")) for n in trainable)
    else:  # scores only (slot layers factored under SGD train them as alpha, gamma)
        owners = {n for n, m in model.named_modules() if isinstance(m, SelectionLayer)}
        assert trainable and all(n.rsplit(".", 1)[0] in owners and
                                 n.endswith(("scores", "alpha", "gamma")) for n in trainable)


def test_vgg19_with_slot_machines_values_per_connection():
    cfg = TrialConfig(method="slot-gs", model="vgg19", K=4, width_mult=0.125)
    model = build_model(cfg)
    conv = next(m for m in model.modules() if isinstance(m, SelectionLayer))
    assert conv.weight.shape[-1] == 4 and conv.scores.shape == conv.weight.shape
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_too_deep_for_input_is_a_config_error():
    with pytest.raises(ConfigError, match="depth"):
        build_model(TrialConfig(model="conv8"), (1, 8, 8), 10)


def test_dense_first_last_frozen_as_the_reference_or_learned_when_asked():
    cfg = TrialConfig(method="edgepopup", model="conv2", dense_first=True, dense_last=True)
    model = build_model(cfg)
    layers = [m for m in model.modules() if isinstance(m, SelectionLayer)]
    assert [l.method for l in layers] == ["frozen"] + ["edgepopup"] * 3 + ["frozen"]
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {f"{n}.scores" for n, l in model.named_modules() if l in layers[1:4]}
    learned = build_model(cfg.replace(dense_learned=True))
    layers = [m for m in learned.modules() if isinstance(m, SelectionLayer)]
    assert [l.method for l in layers] == ["dense"] + ["edgepopup"] * 3 + ["dense"]
    assert layers[0].weight.requires_grad and layers[-1].weight.requires_grad


def test_models_json_cli():
    out = subprocess.run([sys.executable, "-m", "hiddenlab", "models", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    names = [r["name"] for r in rows]
    for n in ["fc", "conv2", "conv4", "conv6", "conv8", "lenet-300-100", "slot-conv2",
              "slot-conv4", "slot-conv6", "vgg19", "resnet18", "resnet34", "resnet50",
              "resnet101", "wide-resnet50-2", "cifar-resnet18"]:
        assert n in names
    assert dict((r["name"], r["params"]) for r in rows)["conv6"] == 2_261_184

"""biprop (models/selection/biprop.py) against a direct formulation: mask, alpha, the binary
effective weight, the straight-through gradient of the current reference, edge-popup equality
under signed-constant weights, recipe and options, a trial, the CLI and the study."""

import json

import pytest
import torch
from torch import nn

from hiddenlab.cli import main
from hiddenlab.config import ConfigError, TrialConfig
from hiddenlab.models.selection.biprop import METHOD, BipropLayer
from hiddenlab.models.selection.edgepopup import METHOD as EDGEPOPUP
from hiddenlab.models.selection.edgepopup import kept_count
from hiddenlab.models.selection.layers import LayerSpec, selection_layers
from hiddenlab.study.registry import get_study
from hiddenlab.study.trainer import LocalReporter, run_trial


def layer_for(shape=(32, 16, 3, 3), seed=0, **kw) -> BipropLayer:
    torch.manual_seed(seed)
    return METHOD.layer(LayerSpec(shape), TrialConfig(method="biprop", **kw))


def hand_mask(scores: torch.Tensor, k: float) -> torch.Tensor:
    flat = scores.abs().reshape(-1)
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[order[:kept_count(flat.numel(), k)]] = True
    return mask.view_as(scores)


@pytest.mark.parametrize("k", [0.1, 0.33, 0.5, 0.8, 1.0])
def test_forward_is_alpha_sign_w_on_the_top_k_of_abs_scores(k):
    layer = layer_for(k=k)
    w, s = layer.weight, layer.scores.detach()
    m = hand_mask(s, k)
    kept = kept_count(w.numel(), k)
    assert int(m.sum()) == kept
    alpha = (w.abs() * m).sum() / kept         # the mean |W| of the kept weights
    expect = alpha * torch.sign(w) * m
    got = layer.compute_weight().detach()
    torch.testing.assert_close(got, expect, rtol=1e-6, atol=0)
    assert torch.equal(got != 0, m)
    # one alpha per layer: every kept entry has the same magnitude
    mags = got[m].abs()
    assert torch.equal(mags, mags[0].expand_as(mags))
    torch.testing.assert_close(mags[0], w[m].abs().mean(), rtol=1e-6, atol=0)


def test_gradient_is_the_corrected_reference_backward():
    """The reference: q = alpha*m forward, g*|W| backward, W_eff = sign(W)*q, q fed |S|. Built
    here with autograd: q = alpha*m + |W|*(|S| - |S|.detach()) (value alpha*m, derivative |W|
    to |S|), alpha a constant. So dL/dS = dL/dW_eff * W * sign(S)."""
    layer = layer_for(k=0.4)
    x = torch.randn(4, 16, 10, 10)
    layer(x).square().sum().backward()
    mine = layer.scores.grad.clone()

    s = layer.scores.detach().clone().requires_grad_(True)
    w = layer.weight
    m = hand_mask(s.detach(), 0.4).float()
    alpha = (w.abs() * m).sum() / m.sum()
    a = s.abs()
    q = alpha * m + w.abs() * (a - a.detach())
    w_eff = torch.sign(w) * q
    w_eff.retain_grad()
    nn.functional.conv2d(x, w_eff, None, 1, 0).square().sum().backward()
    torch.testing.assert_close(mine, s.grad, rtol=1e-5, atol=1e-6)
    # ... which is dL/dW_eff * W * sign(S), not dL/dW_eff * alpha * sign(W)
    torch.testing.assert_close(mine, w_eff.grad * w * torch.sign(s.detach()), rtol=1e-5,
                               atol=1e-6)
    assert not torch.allclose(mine, w_eff.grad * alpha * torch.sign(w) * torch.sign(s.detach()),
                              rtol=1e-3)


def test_weights_stay_frozen_and_only_scores_get_gradients():
    layer = layer_for()
    assert [n for n, p in layer.named_parameters()] == ["scores"]
    assert "weight" in dict(layer.named_buffers())


def test_signed_constant_weights_make_biprop_edgepopup():
    """|W| = c everywhere: alpha = c, so forward and gradient are edge-popup's."""
    torch.manual_seed(3)
    spec = LayerSpec((24, 12, 3, 3))
    cfg_b = TrialConfig(method="biprop", k=0.3, init="signed_constant")
    cfg_e = TrialConfig(method="edgepopup", k=0.3, init="signed_constant")
    torch.manual_seed(3)
    b = METHOD.layer(spec, cfg_b)
    torch.manual_seed(3)
    e = EDGEPOPUP.layer(spec, cfg_e)
    assert torch.equal(b.weight, e.weight) and torch.equal(b.scores, e.scores)
    x = torch.randn(2, 12, 8, 8)
    yb, ye = b(x), e(x)
    torch.testing.assert_close(yb, ye, rtol=1e-6, atol=1e-6)
    yb.sum().backward()
    ye.sum().backward()
    torch.testing.assert_close(b.scores.grad, e.scores.grad, rtol=1e-5, atol=1e-7)


def test_eval_weight_is_cached_and_equal_to_training_weight():
    layer = layer_for()
    train_w = layer.compute_weight().detach()
    layer.eval()
    first = layer.effective_weight()
    assert torch.equal(first, train_w) and layer.effective_weight() is first
    assert torch.equal(layer.materialize(), train_w)


def test_trial_learns_and_keeps_weights_frozen(tmp_path):
    cfg = TrialConfig(method="biprop", model="conv2", width_mult=0.25, dataset="synthetic",
                      synthetic_shape=(3, 16, 16), synthetic_size=256, batch_size=32,
                      device="cpu", schedule="constant", epochs=2)
    m = run_trial(cfg, LocalReporter(tmp_path, progress=False))
    assert m["val_acc"] > 0.3 and m["kept_fraction"] == pytest.approx(0.5, abs=1e-3)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    torch.manual_seed(cfg.seed)
    fresh = METHOD.build_model(cfg, (3, 16, 16), 10).state_dict()
    for name, value in fresh.items():
        if name.endswith(".weight"):
            assert torch.equal(state[name], value), name
        if name.endswith(".scores"):
            assert not torch.equal(state[name], value), name


def test_finetune_child_holds_the_binary_weights(tmp_path):
    from hiddenlab.models.selection.finetune import from_parent

    cfg = TrialConfig(method="biprop", model="conv2", width_mult=0.25, dataset="synthetic",
                      synthetic_shape=(3, 16, 16), synthetic_size=128, batch_size=32,
                      device="cpu", epochs=1)
    run_trial(cfg, LocalReporter(tmp_path / "p", progress=False))
    parent = METHOD.build_model(cfg, (3, 16, 16), 10)
    state = torch.load(tmp_path / "p" / "checkpoint.pt", weights_only=False)["model"]
    parent.load_state_dict(state)
    child = from_parent(TrialConfig(method="finetune", parent=str(tmp_path / "p"), device="cpu"),
                        (3, 16, 16), 10)
    for (_, p), (_, c) in zip(selection_layers(parent), selection_layers(child)):
        w = c.weight.detach()
        kept = w[w != 0].abs()
        assert torch.allclose(kept, kept[0].expand_as(kept))  # one magnitude: alpha
        assert torch.equal(w, p.materialize())


# --- config, CLI, study ----------------------------------------------------------------------------
def test_recipe_defaults_per_model():
    c = TrialConfig(method="biprop")
    ep = TrialConfig(method="edgepopup")
    shared = ("optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs",
              "epochs", "batch_size", "label_smoothing")
    assert [getattr(c, f) for f in shared] == [getattr(ep, f) for f in shared]
    assert (c.lr, c.weight_decay, c.batch_size, c.epochs, c.init, c.k, c.score_init) == \
        (0.1, 1e-4, 128, 100, "scaled_kaiming_normal", 0.5, "kaiming_uniform")
    r = TrialConfig(method="biprop", model="cifar-resnet18")
    assert (r.weight_decay, r.batch_size, r.init) == (5e-4, 256, "scaled_kaiming_normal")
    i = TrialConfig(method="biprop", model="wide-resnet50-2")
    assert (i.lr, i.momentum, i.batch_size, i.warmup_epochs, i.label_smoothing, i.init) == \
        (0.256, 0.875, 256, 5.0, 0.1, "signed_constant")
    code = TrialConfig(method="biprop", init="scaled_kaiming_normal_code", k=0.2)
    assert code.init == "scaled_kaiming_normal_code"


@pytest.mark.parametrize("kw,field", [(dict(K=4), "K"), (dict(topk_scope="global"), "topk_scope"),
                                      (dict(score_abs=False), "score_abs"),
                                      (dict(rerand_rate=0.1), "rerand_rate"),
                                      (dict(k=0.0), "k")])
def test_options_not_taken_or_out_of_range_are_refused(kw, field):
    with pytest.raises(ConfigError) as e:
        TrialConfig(method="biprop", **kw)
    assert e.value.field == field


def test_help_shows_the_recipe_and_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--method", "biprop", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("[default: 0.1 (biprop recipe)]", "[default: scaled_kaiming_normal (biprop "
                 "recipe)]", "biprop's grid", "--score-init"):
        assert text in out, text
    assert "--score-abs" not in out and "--rerand-every" not in out


def test_train_cli_end_to_end(tmp_path, capsys):
    rc = main(["train", "--method", "biprop", "--k", "0.2", "--model", "conv2", "--width-mult",
               "0.25", "--synthetic-shape", "3", "16", "16", "--synthetic-size", "256",
               "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--no-progress",
               "--out", str(tmp_path)])
    assert rc == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["done"] and final["run_id"].startswith("biprop-conv2-")
    assert final["kept_fraction"] == pytest.approx(0.2, abs=1e-3)
    assert json.loads((tmp_path / "config.json").read_text())["k"] == 0.2


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_study_expands(scale):
    plan = get_study("biprop-k").plan(scale)
    cfgs = [t.cfg for t in plan.trials]
    seeds = 1 if scale == "smoke" else 5
    assert len(cfgs) == 2 * 2 * 6 * seeds
    for model in ("conv6", "cifar-resnet18"):
        for method in ("biprop", "edgepopup"):
            ks = sorted({c.k for c in cfgs if c.model == model and c.method == method})
            assert ks == [0.1, 0.2, 0.4, 0.5, 0.6, 0.8]
    assert {c.init for c in cfgs if c.method == "biprop"} == {"scaled_kaiming_normal"}
    assert {c.init for c in cfgs if c.method == "edgepopup"} == {"kaiming_normal"}
    resnet = [c for c in cfgs if c.model == "cifar-resnet18"]
    assert all(c.weight_decay == 5e-4 and c.batch_size == 256 for c in resnet)
    if scale == "paper":
        assert all(c.dataset == "cifar10" and c.epochs == 100 for c in cfgs)
    else:
        assert all(c.dataset == "synthetic" and c.epochs == 2 for c in cfgs)

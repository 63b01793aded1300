"""IteRand (models/selection/iterand.py) against a direct formulation: the raw-score mask, the
straight-through gradient, re-randomisation (which weights, when, from which distribution,
from which random stream), r = 0 as edge-popup, recipe and options, exact resume, the CLI and
the study."""

import json

import pytest
import torch
from scipy import stats
from torch import nn

from hiddenlab.cli import main
from hiddenlab.config import ConfigError, TrialConfig
from hiddenlab.models.selection.edgepopup import kept_count
from hiddenlab.models.selection.iterand import METHOD, IteRandLayer, Rerandomize
from hiddenlab.models.selection.layers import LayerSpec
from hiddenlab.study.registry import get_study
from hiddenlab.study.trainer import LocalReporter, run_trial
from reporters import KillAfter, Killed

SMALL = dict(model="conv2", width_mult=0.25, dataset="synthetic", synthetic_shape=(3, 16, 16),
             synthetic_size=256, batch_size=32, device="cpu", schedule="constant")


def layer_for(shape=(512, 256), seed=0, **kw) -> tuple[IteRandLayer, TrialConfig]:
    cfg = TrialConfig(method="iterand", **kw)
    torch.manual_seed(seed)
    return METHOD.layer(LayerSpec(shape), cfg), cfg


def hook_for(layer: IteRandLayer, cfg: TrialConfig) -> Rerandomize:
    (hook,) = METHOD.hooks(nn.Sequential(layer), cfg)
    return hook


def hand_mask(ranked: torch.Tensor, k: float) -> torch.Tensor:
    """The top kept_count(n, k) entries by a stable sort (ties: lower index kept)."""
    flat = ranked.reshape(-1)
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[order[:kept_count(flat.numel(), k)]] = True
    return mask.view_as(ranked)


def due_step(every: int) -> int:
    """An on_step_end step after which the hook re-randomises: before step t, (t+1) % K == 0."""
    return 2 * every - 2


# --- the mask and its gradient ---------------------------------------------------------------------
@pytest.mark.parametrize("score_abs", [False, True])
def test_mask_ranks_raw_scores_by_default(score_abs):
    layer, _ = layer_for((64, 32, 3, 3), k=0.3, score_abs=score_abs)
    s = layer.scores.detach()
    expect = hand_mask(s.abs() if score_abs else s, 0.3)
    assert torch.equal(layer.mask(), expect)
    if not score_abs:  # the raw ranking keeps no negative score while positive ones are pruned
        assert s[expect].min() >= s[~expect].max()
    assert torch.equal(layer.compute_weight().detach(), layer.weight * expect)


def test_gradient_is_straight_through_without_sign():
    layer, _ = layer_for((16, 8, 3, 3), k=0.4)
    x = torch.randn(4, 8, 10, 10)
    layer(x).square().sum().backward()
    mine = layer.scores.grad.clone()
    # By hand: W*m + W*(S - S.detach()) has the value W*m and sends dL/dW_eff * W to S.
    s = layer.scores.detach().clone().requires_grad_(True)
    m = hand_mask(s.detach(), 0.4).float()
    w = layer.weight * m + layer.weight * (s - s.detach())
    nn.functional.conv2d(x, w, None, 1, 0).square().sum().backward()
    torch.testing.assert_close(mine, s.grad, rtol=1e-6, atol=1e-7)


def test_score_init_is_kaiming_uniform_relu():
    layer, _ = layer_for((300, 600))
    bound = (6 / 600) ** 0.5
    s = layer.scores.detach()
    assert s.abs().max() <= bound and s.abs().max() > 0.99 * bound
    assert stats.kstest(s.flatten().numpy(), stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3


# --- re-randomisation ----------------------------------------------------------------------------
def test_rerandomize_replaces_exactly_the_picked_pruned_weights():
    layer, _ = layer_for((40, 30), k=0.5)
    before, m = layer.weight.clone(), layer.mask()
    fresh, picks = torch.randn(40, 30), torch.rand(40, 30) < 0.5
    layer.rerandomize(fresh, picks)
    mf, pf = m.float(), picks.float()
    # the reference's formula, term by term
    expect = before * mf + (1 - mf) * ((1 - pf) * before + pf * fresh)
    assert torch.equal(layer.weight, expect)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_hook_changes_a_bernoulli_r_share_of_pruned_weights_and_no_kept_one(rate):
    layer, cfg = layer_for(k=0.4, rerand_every=5, rerand_rate=rate, init="kaiming_normal")
    before, scores, m = layer.weight.clone(), layer.scores.detach().clone(), layer.mask()
    hook_for(layer, cfg).on_step_end(due_step(5))
    changed = layer.weight != before
    assert not changed[m].any()                      # kept weights never change
    pruned = int((~m).sum())
    share = int(changed.sum())
    sd = (pruned * rate * (1 - rate)) ** 0.5
    assert abs(share - rate * pruned) < 5 * sd, (share, rate * pruned)
    assert torch.equal(layer.scores.detach(), scores)  # scores untouched


def test_rate_one_redraws_every_pruned_weight_and_rate_zero_none():
    layer, cfg = layer_for(k=0.3, rerand_every=3, rerand_rate=1.0, init="kaiming_uniform")
    before, m = layer.weight.clone(), layer.mask()
    hook_for(layer, cfg).on_step_end(due_step(3))
    assert torch.equal(layer.weight != before, ~m)
    layer, cfg = layer_for(k=0.3, rerand_every=3, rerand_rate=0.0)
    before = layer.weight.clone()
    hook_for(layer, cfg).on_step_end(due_step(3))
    assert torch.equal(layer.weight, before)


@pytest.mark.parametrize("init", ["kaiming_normal", "kaiming_uniform", "scaled_kaiming_normal",
                                  "signed_constant"])
def test_new_values_come_from_the_init_distribution(init):
    """Two-sample test of the re-drawn values against the layer's own initial draw (scaled
    inits included: the re-draw is scaled by the same k)."""
    layer, cfg = layer_for((512, 256), k=0.3, rerand_every=2, rerand_rate=1.0, init=init)
    initial, m = layer.weight.clone(), layer.mask()
    hook_for(layer, cfg).on_step_end(due_step(2))
    new = layer.weight[~m].numpy()
    if init == "signed_constant":
        c = initial.abs().max().item()
        assert set(new.tolist()) == {c, -c}
        n = new.size
        assert abs((new > 0).sum() - n / 2) < 5 * (n / 4) ** 0.5
    else:
        assert stats.ks_2samp(new, initial.flatten().numpy()).pvalue > 1e-3
    # ... and a different distribution is told apart (the test can fail)
    assert stats.ks_2samp(new, 1.3 * initial.flatten().numpy()).pvalue < 1e-6


def test_hook_runs_before_every_kth_step_only():
    """Re-draws after step s exactly when (s + 2) % K == 0: before step t = s + 1 with
    (t + 1) % K == 0, the reference's rule."""
    layer, cfg = layer_for((30, 20), rerand_every=4, rerand_rate=1.0)
    hook = hook_for(layer, cfg)
    redrawn = []
    for step in range(12):
        before = layer.weight.clone()
        hook.on_step_end(step)
        if not torch.equal(before, layer.weight):
            redrawn.append(step)
    assert redrawn == [2, 6, 10]


def test_draws_are_a_function_of_seed_step_layer_and_leave_the_global_rng_alone():
    def redraw(seed, step, rng_seed):
        layer, cfg = layer_for((30, 20), rerand_every=1, rerand_rate=0.5, seed=7)
        hook = hook_for(layer, cfg)
        hook.seed = seed
        torch.manual_seed(rng_seed)  # whatever the training stream is doing
        state = torch.get_rng_state()
        hook.on_step_end(step)
        assert torch.equal(torch.get_rng_state(), state)
        return layer.weight.clone()

    a = redraw(0, 5, rng_seed=1)
    assert torch.equal(a, redraw(0, 5, rng_seed=2))
    assert not torch.equal(a, redraw(0, 6, rng_seed=1))
    assert not torch.equal(a, redraw(1, 5, rng_seed=1))


def test_layers_draw_from_different_streams():
    torch.manual_seed(0)
    cfg = TrialConfig(method="iterand", rerand_every=1, rerand_rate=1.0, score_init="constant",
                      init="kaiming_normal")
    layers = [METHOD.layer(LayerSpec((20, 20)), cfg) for _ in range(2)]
    for l in layers:  # identical weights and scores: only the stream can tell them apart
        l.weight.copy_(layers[0].weight)
    (hook,) = METHOD.hooks(nn.Sequential(*layers), cfg)
    hook.on_step_end(0)
    assert not torch.equal(layers[0].weight, layers[1].weight)


def test_eval_cache_follows_the_weights():
    layer, _ = layer_for((30, 20))
    layer.eval()
    first = layer.effective_weight()
    with torch.no_grad():
        layer.weight.mul_(2)  # any change of the frozen values, not only a re-draw
    assert torch.equal(layer.effective_weight(), 2 * first)


# --- in a trial ----------------------------------------------------------------------------------
def final_state(out):
    return torch.load(out / "checkpoint.pt", weights_only=False)


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_rate_zero_is_edgepopup_bit_for_bit(tmp_path):
    """r = 0 re-draws nothing (the hook still runs, drawing from its own stream, every step),
    so IteRand trains exactly edge-popup on raw scores with IteRand's inits and recipe."""
    it = TrialConfig(method="iterand", epochs=2, rerand_every=1, rerand_rate=0.0, **SMALL)
    ep = TrialConfig(method="edgepopup", epochs=2, init=it.init, lr=it.lr, score_abs=False,
                     score_init="kaiming_uniform_relu", **SMALL)
    a = run_trial(it, LocalReporter(tmp_path / "it", progress=False))
    b = run_trial(ep, LocalReporter(tmp_path / "ep", progress=False))
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "flip_rate")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert_same_state(final_state(tmp_path / "it")["model"], final_state(tmp_path / "ep")["model"])


def test_resume_after_kill_is_exact_and_checkpoints_hold_the_redrawn_weights(tmp_path):
    # 8 steps per epoch, re-draws before steps 2, 5, 8, 11, 14: in both epochs
    cfg = TrialConfig(method="iterand", epochs=2, rerand_every=3, rerand_rate=0.5, **SMALL)
    straight = run_trial(cfg, LocalReporter(tmp_path / "a", progress=False))
    with pytest.raises(Killed):
        run_trial(cfg, KillAfter(tmp_path / "b", 1))
    after_one = final_state(tmp_path / "b")["model"]
    resumed = run_trial(cfg, LocalReporter(tmp_path / "b", progress=False))
    drop = ("epoch_time_s", "wall_time_s")
    assert {k: v for k, v in straight.items() if k not in drop} == \
        {k: v for k, v in resumed.items() if k not in drop}
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert_same_state(a["model"], b["model"])
    assert_same_state(a["best"]["model"], b["best"]["model"])
    torch.manual_seed(cfg.seed)
    initial = METHOD.build_model(cfg, (3, 16, 16), 10).state_dict()
    weights = [n for n in initial if n.endswith(".weight")]
    # the weights were re-drawn in epoch 1 (and saved so), and again in epoch 2
    assert any(not torch.equal(after_one[n], initial[n]) for n in weights)
    assert any(not torch.equal(after_one[n], a["model"][n]) for n in weights)


def test_finetune_starts_from_the_redrawn_weights(tmp_path):
    """A finetune child holds the parent's evaluation weights: the re-drawn frozen values of its
    checkpoint, not the seed's draw."""
    from hiddenlab.models.selection.finetune import from_parent

    cfg = TrialConfig(method="iterand", epochs=1, rerand_every=2, rerand_rate=1.0, **SMALL)
    run_trial(cfg, LocalReporter(tmp_path / "p", progress=False))
    parent = METHOD.build_model(cfg, (3, 16, 16), 10)
    parent.load_state_dict(final_state(tmp_path / "p")["model"])
    child = from_parent(TrialConfig(method="finetune", parent=str(tmp_path / "p"), device="cpu"),
                        (3, 16, 16), 10)
    x = torch.randn(16, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(parent.eval()(x), child.eval()(x))


# --- config, CLI, study -------------------------------------------------------------------------
def test_recipe_defaults_per_model():
    c = TrialConfig(method="iterand")
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay, c.schedule, c.warmup_epochs,
            c.epochs, c.batch_size, c.init, c.label_smoothing) == \
        ("sgd", 0.3, 0.9, 1e-4, "cosine", 0.0, 100, 128, "kaiming_uniform", 0.0)
    assert (c.k, c.rerand_every, c.rerand_rate, c.score_abs, c.score_init) == \
        (0.5, 300, 0.1, False, "kaiming_uniform_relu")
    r = TrialConfig(method="iterand", model="cifar-resnet18")
    assert (r.lr, r.weight_decay, r.batch_size, r.init) == (0.1, 5e-4, 128, "kaiming_uniform")
    i = TrialConfig(method="iterand", model="resnet50")
    assert (i.lr, i.momentum, i.weight_decay, i.batch_size, i.warmup_epochs, i.epochs,
            i.init, i.label_smoothing) == (0.1, 0.9, 1e-4, 128, 5.0, 100, "signed_constant", 0.0)
    assert TrialConfig(method="iterand", lr=0.05).lr == 0.05  # given values win


@pytest.mark.parametrize("kw,field", [(dict(K=4), "K"), (dict(topk_scope="global"), "topk_scope"),
                                      (dict(rerand_every=0), "rerand_every"),
                                      (dict(rerand_rate=1.5), "rerand_rate"),
                                      (dict(rerand_rate=-0.1), "rerand_rate")])
def test_options_not_taken_or_out_of_range_are_refused(kw, field):
    with pytest.raises(ConfigError) as e:
        TrialConfig(method="iterand", **kw)
    assert e.value.field == field
    with pytest.raises(ConfigError, match="does not take rerand_every"):
        TrialConfig(method="edgepopup", rerand_every=10)


def test_help_shows_the_recipe_and_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--method", "iterand", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("[default: 0.3 (iterand recipe)]", "[default: kaiming_uniform (iterand recipe)]",
                 "--rerand-every", "[default: 300]", "--rerand-rate", "[default: 0.1]",
                 "(the IteRand reference) [default: False]"):
        assert text in out, text
    assert "--K " not in out and "--topk-scope" not in out


def test_train_cli_end_to_end(tmp_path, capsys):
    rc = main(["train", "--method", "iterand", "--model", "conv2", "--width-mult", "0.25",
               "--synthetic-shape", "3", "16", "16", "--synthetic-size", "256", "--epochs", "2",
               "--batch-size", "32", "--rerand-every", "2", "--rerand-rate", "1", "--device",
               "cpu", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["done"] and final["run_id"].startswith("iterand-conv2-")
    assert final["val_acc"] > 0.2 and final["kept_fraction"] == pytest.approx(0.5, abs=1e-3)
    assert (tmp_path / "selection.json").exists()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["rerand_every"], cfg["rerand_rate"], cfg["lr"]) == (2, 1.0, 0.3)


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_study_expands(scale):
    plan = get_study("iterand-k").plan(scale)
    cfgs = [t.cfg for t in plan.trials]
    seeds = 1 if scale == "smoke" else 3
    assert len(cfgs) == (5 + 5 + 3) * seeds  # r = 0.1 at k = 0.5 is one of the k line's trials
    iterand = [c for c in cfgs if c.method == "iterand"]
    ep = [c for c in cfgs if c.method == "edgepopup"]
    assert {c.rerand_rate for c in iterand} == {0.0, 0.01, 0.1, 1.0}
    assert {c.k for c in iterand if c.rerand_rate == 0.1} == {0.1, 0.3, 0.5, 0.7, 0.9}
    assert all(c.lr == 0.3 and c.model == "conv6" for c in cfgs)
    assert all((c.score_abs, c.score_init, c.init) ==
               (False, "kaiming_uniform_relu", "kaiming_uniform") for c in ep)
    if scale == "paper":
        assert all(c.dataset == "cifar10" and c.epochs == 100 and c.width_mult == 1.0
                   for c in cfgs)
        assert {c.rerand_every for c in iterand} == {300}
    else:
        assert all(c.dataset == "synthetic" and c.epochs == 2 for c in cfgs)

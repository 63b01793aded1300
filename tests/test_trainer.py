"""The one-trial trainer on real (generated) data: every method trains, learning happens,
determinism, resume after a kill, NaN, finetune exactness, schedules."""

import json
import math

import pytest
import torch

from hiddenlab.models import build_model
from hiddenlab.models.selection import selection_layers
from hiddenlab.models.selection.finetune import from_parent
from hiddenlab.config import TrialConfig
from hiddenlab.study.trainer import LocalReporter, TrialDiverged, lr_factor, run_trial
from reporters import KillAfter, Killed

SMALL = dict(model="conv2", width_mult=0.25, dataset="synthetic", synthetic_shape=(3, 16, 16),
             synthetic_size=512, batch_size=64, device="cpu", schedule="constant")
METHOD_KW = {"dense": dict(lr=0.05), "edgepopup": dict(k=0.5), "supermask": dict(lr=200.0, weight_decay=0),
             "slot-gs": dict(K=4), "slot-ps": dict(K=4, lr=25.0, weight_decay=0)}


def cfg_for(method, **kw):
    return TrialConfig(method=method, **{**SMALL, **METHOD_KW[method], **kw})


@pytest.mark.parametrize("method", sorted(METHOD_KW))
def test_every_method_trains_and_weights_stay_frozen(method, tmp_path):
    epochs = 5 if method in ("slot-ps", "supermask") else 2  # sampling explores longer
    cfg = cfg_for(method, epochs=epochs)
    m = run_trial(cfg, LocalReporter(tmp_path, progress=False))
    assert m["done"] and m["epoch"] == epochs and 0 <= m["test_acc"] <= 1
    assert m["val_acc"] > 0.3, m  # synthetic is learnable: chance is 0.1
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == list(range(1, epochs + 1))
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    torch.manual_seed(cfg.seed)
    fresh = build_model(cfg, (3, 16, 16), 10)
    for name, value in fresh.state_dict().items():
        if name.endswith(".weight") and method != "dense":
            assert torch.equal(ckpt["model"][name], value), name  # frozen random weights
        if name.endswith(".scores"):
            assert not torch.equal(ckpt["model"][name], value), name  # scores learned
    if method == "dense":
        assert math.isnan(m["flip_rate"])
    else:
        assert 0 < lines[0]["flip_rate"] <= 1
        assert (tmp_path / "selection.json").exists()
    if method == "edgepopup":
        assert m["kept_fraction"] == pytest.approx(0.5, abs=1e-3)


def test_deterministic_same_seed(tmp_path):
    cfg = cfg_for("slot-ps", epochs=1)
    a = run_trial(cfg, LocalReporter(tmp_path / "a", progress=False))
    b = run_trial(cfg, LocalReporter(tmp_path / "b", progress=False))
    keys = ("train_loss", "train_acc", "val_acc", "test_acc", "flip_rate")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    c = run_trial(cfg.replace(seed=1), LocalReporter(tmp_path / "c", progress=False))
    assert c["train_loss"] != a["train_loss"]


@pytest.mark.parametrize("method", ["edgepopup", "slot-ps", "supermask"])
def test_resume_after_kill_matches_uninterrupted(method, tmp_path):
    cfg = cfg_for(method, epochs=3)
    straight = run_trial(cfg, LocalReporter(tmp_path / "a", progress=False))
    with pytest.raises(Killed):
        run_trial(cfg, KillAfter(tmp_path / "b", 1))
    resumed = run_trial(cfg, LocalReporter(tmp_path / "b", progress=False))
    keys = ("train_loss", "val_acc", "test_acc", "flip_rate")
    assert [straight[k] for k in keys] == [resumed[k] for k in keys]
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]
    # a finished trial is not trained again
    assert run_trial(cfg, LocalReporter(tmp_path / "b", progress=False))["test_acc"] == \
        resumed["test_acc"]


def test_nan_loss_raises(tmp_path):
    with pytest.raises(TrialDiverged, match="epoch 1"):
        run_trial(cfg_for("dense", lr=1e6, epochs=1), LocalReporter(tmp_path, progress=False))


@pytest.mark.parametrize("parent_method,kw", [
    ("edgepopup", {}), ("slot-gs", {}), ("edgepopup", dict(topk_scope="global")),
    ("supermask", dict(supermask_scale=True)),
])
def test_finetune_reproduces_parent_exactly(parent_method, kw, tmp_path):
    # the parent's last epoch: after one, a sampled supermask can still be near chance
    parent_cfg = cfg_for(parent_method, epochs=2, keep_epochs=(2,), **kw)
    reporter = LocalReporter(tmp_path / "p", progress=False, keep_epochs=(2,))
    run_trial(parent_cfg, reporter)
    ckpt = torch.load(tmp_path / "p" / "epoch_2.pt", weights_only=False)
    parent = build_model(parent_cfg, (3, 16, 16), 10)
    parent.load_state_dict(ckpt["model"])
    parent.eval()
    child_cfg = TrialConfig(method="finetune", parent=str(tmp_path / "p"), parent_epoch=2,
                            epochs=1, lr=0.01, device="cpu")
    child = from_parent(child_cfg, (3, 16, 16), 10).eval()
    x = torch.randn(32, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(parent(x), child(x))
    assert all(l.method == "dense" for _, l in selection_layers(child))
    m = run_trial(child_cfg, LocalReporter(tmp_path / "c", progress=False))
    assert m["done"] and m["kept_fraction"] == 1.0 and m["val_acc"] > 0.3


def test_lr_schedules():
    c = TrialConfig(schedule="cosine", epochs=10, warmup_epochs=2)
    assert lr_factor(c, 1.0) == pytest.approx(0.5, abs=1e-6)
    assert lr_factor(c, 2.0) == pytest.approx(1.0)
    assert lr_factor(c, 6.0) == pytest.approx(0.5)
    m = TrialConfig(schedule="multistep", milestones=(3, 6), gamma=0.1)
    assert [lr_factor(m, e) for e in (0, 2.9, 3, 6.5)] == pytest.approx([1, 1, 0.1, 0.01])
    r = TrialConfig(schedule="sgdr", epochs=200, restarts=(25, 75))
    assert lr_factor(r, 25.0) == 1.0 and lr_factor(r, 75.0) == 1.0
    assert lr_factor(r, 50.0) == pytest.approx(0.5)
    assert lr_factor(TrialConfig(schedule="constant"), 7.3) == 1.0


def test_channels_last_converts_4d_only_slot_values_untouched():
    from hiddenlab.study.trainer import to_channels_last

    model = build_model(TrialConfig(method="slot-gs", model="vgg19", K=2, width_mult=0.125))
    to_channels_last(model)
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if t.dim() == 4:
            assert t.is_contiguous(memory_format=torch.channels_last), name
        elif t.dim() == 5:
            assert t.is_contiguous(), name  # (out, in, kh, kw, K) left as it was
    assert model(torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)).shape == (2, 10)

"""TrialConfig: validation names the field and the allowed values; stable run ids; CLI flags."""

import argparse
import json
import subprocess
import sys

import pytest

from hiddenlab.config import ConfigError, TrialConfig


@pytest.mark.parametrize("kw,field,words", [
    (dict(method="nope"), "method", "edgepopup"),
    (dict(model="resnet9"), "model", "conv6"),
    (dict(init="gauss"), "init", "kaiming_normal"),
    (dict(k=0.0), "k", "(0, 1]"),
    (dict(k=1.5), "k", "(0, 1]"),
    (dict(method="slot-gs", K=1), "K", "outside [2, 4096]"),
    (dict(method="edgepopup", K=4), "K", "slot-gs"),
    (dict(width_mult=0.0), "width_mult", "outside (0, 64]"),
    (dict(model="conv", depth=5), "depth", "even"),
    (dict(model="resnet18", depth=4), "depth", "conv families"),
    (dict(method="dense", eval_mode="sample"), "eval_mode", "does not take"),
    (dict(method="slot-gs", k=0.3), "k", "slot-gs does not take k"),
    (dict(lr=float("nan")), "lr", "finite"),
    (dict(schedule="sgdr", restarts=(5, 12), epochs=10), "restarts", "epochs is 10"),
    (dict(dataset="imagenet21k"), "dataset", "cifar10"),
])
def test_bad_values_name_field(kw, field, words):
    with pytest.raises(ConfigError) as e:
        TrialConfig(**kw)
    assert e.value.field == field
    assert str(e.value).startswith(field + ":") and words in str(e.value)


def test_run_id_stable_and_default_insensitive():
    a = TrialConfig(method="edgepopup", k=0.5, model="conv4", seed=3)
    b = TrialConfig(method="edgepopup", model="conv4", seed=3)  # k defaults to 0.5
    assert a.run_id() == b.run_id()
    assert a.run_id() != a.replace(seed=4).run_id()
    assert a.run_id() == TrialConfig.from_dict(json.loads(json.dumps(a.to_dict()))).run_id()
    assert a.run_id() == a.replace(num_workers=7, device="cpu").run_id()  # how, not what
    assert TrialConfig(method="slot-gs").run_id() == TrialConfig(method="slot-gs", K=8).run_id()
    # pinned: a change of hashing would orphan every stored result
    assert TrialConfig().run_id() == TrialConfig().run_id() == "edgepopup-conv6-" + \
        TrialConfig().run_id().rsplit("-", 1)[1]


def test_method_defaults():
    assert TrialConfig(method="edgepopup").keep == 0.5
    assert TrialConfig(method="slot-gs").num_values == 8
    assert TrialConfig(method="slot-ps", K=16).num_values == 16
    assert TrialConfig(method="slot-gs").init == "slot-code"
    assert TrialConfig(method="supermask").eval_label == "expected"
    assert TrialConfig(method="dense").num_values == 1
    assert TrialConfig(method="dense").lr == 0.01  # 0.1 diverges (docs/recipes.md)
    assert TrialConfig(method="dense", optimizer="adam").lr == 3e-4
    assert TrialConfig(method="slot-ps").lr == 25.0
    assert TrialConfig(method="dense", lr=0.01).run_id() == TrialConfig(method="dense").run_id()


def test_finetune_without_parent_refused_before_training():
    cfg = TrialConfig(method="finetune")
    with pytest.raises(ConfigError, match="parent: finetune needs --parent"):
        cfg.method_spec.preflight(cfg)


def test_cli_flags_roundtrip():
    p = argparse.ArgumentParser()
    TrialConfig.add_arguments(p)
    ns = p.parse_args(["--method", "slot-ps", "--K", "4", "--width-mult", "0.5", "--model", "conv",
                       "--depth", "4", "--schedule", "multistep", "--milestones", "3", "5",
                       "--restarts", "--eval-mode", "sample", "--epochs", "6"])
    cfg = TrialConfig.from_args(ns)
    assert (cfg.method, cfg.K, cfg.width_mult, cfg.depth, cfg.milestones, cfg.eval_mode,
            cfg.epochs) == ("slot-ps", 4, 0.5, 4, (3, 5), "sample", 6)
    assert cfg.lr == TrialConfig(method="slot-ps").lr  # untouched fields: the method's recipe


def test_train_help_lists_every_field_and_bad_input_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "hiddenlab", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--k ", "--init", "--width-mult", "--depth", "--epochs", "--lr",
                 "--batch-size", "--seed", "--score-abs", "--loader"):
        assert flag in out
    assert "--K " not in out and "--eval-mode" not in out  # slot/Zhou options: not edge-popup's
    out = subprocess.run([sys.executable, "-m", "hiddenlab", "train", "--method", "slot-ps",
                          "--help"], capture_output=True, text=True, check=True).stdout
    assert "--K " in out and "--eval-mode" in out and "--k " not in out
    assert "[default: 25.0 (slot-ps recipe)]" in out.replace("\n", " ").replace("  ", " ") or \
        "25.0 (slot-ps recipe)" in " ".join(out.split())
    r = subprocess.run([sys.executable, "-m", "hiddenlab", "train", "--k", "2",
                        "--out", str(tmp_path / "t")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("hiddenlab: error: k:")
    assert not (tmp_path / "t").exists()  # nothing written
    r = subprocess.run([sys.executable, "-m", "hiddenlab", "train", "--method", "finetune",
                        "--parent", str(tmp_path / "missing"), "--out", str(tmp_path / "t")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "parent:" in r.stderr and not (tmp_path / "t").exists()

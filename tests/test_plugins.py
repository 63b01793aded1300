"""Selection methods are plug-ins: one file declares a method (options, recipe, layer) and one line
registers it; the rest of hiddenlab asks the registry. Every method refuses the options it does
not take, and its command-line defaults are its recipe."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hiddenlab
from hiddenlab.config import METHODS, ConfigError, TrialConfig, option_fields
from hiddenlab.study.cli import register

ROOT = Path(hiddenlab.__file__).resolve().parents[2]

# A whole method in one file: a mask keeping the connections whose score exceeds a margin,
# straight-through to the scores. Its last line registers it.
TOY = textwrap.dedent('''
    from dataclasses import dataclass

    import torch
    from torch import nn

    from hiddenlab.config import param
    from hiddenlab.models.inits import init_scores, init_weights
    from hiddenlab.models.selection import Method, SelectionLayer, SelectionOptions, register
    from hiddenlab.models.selection.method import BASE_RECIPE


    class Threshold(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight, scores, margin):
            ctx.save_for_backward(weight)
            return weight * (scores > margin)

        @staticmethod
        def backward(ctx, grad):
            (weight,) = ctx.saved_tensors
            return None, grad * weight, None


    class ToyLayer(SelectionLayer):
        def __init__(self, spec, weight, scores, margin):
            super().__init__(spec)
            self.register_buffer("weight", weight)
            self.scores = nn.Parameter(scores)
            self.margin = margin

        def compute_weight(self):
            return Threshold.apply(self.weight, self.scores, self.margin)

        def selection(self):
            return (self.scores > self.margin).detach()

        kept = selection


    @dataclass(frozen=True)
    class Options(SelectionOptions):
        margin: float = param(0.0, "keep connections whose score exceeds this", ge=-1, le=1)


    class Toy(Method):
        name = "toy"
        paper = "a test of the plug-in interface"
        summary = "keep the connections whose score exceeds a margin"
        Options = Options

        def recipe(self, cfg, given):
            return dict(BASE_RECIPE, lr=0.05, weight_decay=0.0, schedule="constant", epochs=3)

        def kept_fraction(self, opts):
            return 1.0

        def layer(self, spec, cfg):
            weight = init_weights(cfg.init, spec.shape, spec.shape)
            scores = init_scores("kaiming_uniform", spec.shape, spec.shape)
            return ToyLayer(spec, weight, scores, cfg.options.margin)


    register(Toy())
''')

SMALL = ["--model", "fc", "--dataset", "digits", "--width-mult", "0.25", "--device", "cpu",
         "--subset", "256", "--num-workers", "0"]


@pytest.fixture()
def toy_env(tmp_path, monkeypatch):
    (tmp_path / "toy_method.py").write_text(TOY)
    env = dict(os.environ, HIDDENLAB_PLUGINS="toy_method",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return env


def test_a_method_in_one_file_trains_through_train_and_a_study(toy_env, tmp_path, monkeypatch):
    r = subprocess.run([sys.executable, "-m", "hiddenlab", "train", "--method", "toy",
                        "--margin", "0.01", *SMALL, "--epochs", "2", "--out",
                        str(tmp_path / "run")], env=toy_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    final = json.loads(r.stdout.strip().splitlines()[-1])
    assert final["done"] and final["epoch"] == 2 and 0 < final["kept_fraction"] < 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "toy" and config["lr"] == 0.05 and config["margin"] == 0.01
    help_ = subprocess.run([sys.executable, "-m", "hiddenlab", "train", "--method", "toy",
                            "--help"], env=toy_env, capture_output=True, text=True).stdout
    assert "--margin" in help_ and "toy recipe" in help_
    methods = subprocess.run([sys.executable, "-m", "hiddenlab", "methods"], env=toy_env,
                             capture_output=True, text=True).stdout
    assert "toy: keep the connections whose score exceeds a margin" in methods

    # ... and through a study on Ray Tune: the plug-in reaches every worker.
    for k, v in toy_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(str(tmp_path))
    # registered for this test only: studies that take every method (real-data) must not see it
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    monkeypatch.delitem(sys.modules, "toy_method", raising=False)
    import importlib

    importlib.import_module("toy_method")
    from hiddenlab.study import export
    from hiddenlab.study.registry import Study
    from hiddenlab.study.runner import RunOptions, run_study
    from hiddenlab.study.spaces import Phase, Series

    fixed = dict(method="toy", model="fc", dataset="digits", width_mult=0.25, device="cpu",
                 subset=256, num_workers=0, epochs=2)
    study = Study("toy-study", "toy margins", ("toy-study",),
                  lambda scale: [Phase("main", [Series("toy", fixed,
                                                       axes={"margin": [0.0, 0.02]})])])
    summary = run_study(study, RunOptions(storage=str(tmp_path / "results"), num_cpus=2,
                                          verbose=0, figures=False))
    assert summary.ok and summary.counts == {"TERMINATED": 2}
    df = export.load(str(tmp_path / "results"), "toy-study")
    last = df[df.epoch == 2]
    assert sorted(last.margin) == [0.0, 0.02] and (last.method == "toy").all()
    assert last.test_acc.between(0, 1).all()


def _example_value(f: dataclasses.Field):
    """A valid value of option field `f` for the method that declares it."""
    return f.default if f.default is not None else {"parent": "somewhere"}.get(f.name, 1)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_refuses_the_options_it_does_not_take(method):
    taken = set(METHODS[method].Options.field_names())
    foreign = {name: f for name, f in option_fields().items() if name not in taken}
    assert foreign or method == "", "every method misses some other method's option"
    for name, f in foreign.items():
        with pytest.raises(ConfigError) as e:
            TrialConfig(method=method, **{name: _example_value(f)})
        assert e.value.field == name
        assert f"method {method} does not take {name}" in str(e.value)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_command_line_defaults_are_the_methods_recipe(method):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub, ["train", "--method", method])
    args = parser.parse_args(["train", "--method", method])
    cfg = TrialConfig.from_args(args)
    spec = METHODS[method]
    recipe = spec.recipe(cfg, {})
    for name in ("optimizer", "lr", "momentum", "weight_decay", "schedule", "epochs",
                 "batch_size", "init", "label_smoothing"):
        assert getattr(cfg, name) == recipe[name], name
    assert cfg == TrialConfig(method=method)
    help_ = " ".join(parser._subparsers._group_actions[0].choices["train"].format_help().split())
    assert f"[default: {cfg.lr} ({method} recipe)]" in help_


CORE = ["src/hiddenlab/config.py", "study/trainer.py", "study/spaces.py", "study/runner.py",
        "study/export.py"]


@pytest.mark.parametrize("path", CORE)
def test_core_modules_name_no_method(path):
    names = set(METHODS)
    tree = ast.parse((ROOT / path).read_text())
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and
                isinstance(n.value, str) and n.value in names]
    assert not literals, f"{path} names methods {literals}: ask the registry"

"""Exported networks: every method's trial round-trips bit for bit through one small file into
plain torch layers; corrupt, wrong-seed and tampered files are refused with the reason; sizes are
the theoretical bits; the `hiddenlab export` command."""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hiddenlab
from hiddenlab.cli import main
from hiddenlab.config import METHODS, MODELS, TrialConfig
from hiddenlab.models import build_model
from hiddenlab.models.selection.packing import KEPT_VALUES, pack_uint, unpack_uint
from hiddenlab.study import netexport as nx
from hiddenlab.study.trainer import LocalReporter, run_trial, seed_everything

# An FC and a conv model with BatchNorm (ResNet): every kind of state a network has.
MODELS_UNDER_TEST = {
    "fc": dict(model="fc", width_mult=0.25, synthetic_shape=(1, 8, 8)),
    "conv": dict(model="cifar-resnet18", width_mult=0.125, synthetic_shape=(3, 8, 8)),
}
SMALL = dict(dataset="synthetic", synthetic_size=128, batch_size=64, eval_batch_size=64,
             device="cpu", schedule="constant", epochs=1, recalibrate_batches=2,
             save_selection=False)
CASES = {
    "edgepopup-layer": dict(method="edgepopup", k=0.3),
    "edgepopup-global": dict(method="edgepopup", k=0.3, topk_scope="global"),
    "edgepopup-dense-ends": dict(method="edgepopup", k=0.5, dense_first=True, dense_last=True),
    "supermask-expected": dict(method="supermask", supermask_scale=True),
    "supermask-sample": dict(method="supermask", eval_mode="sample"),
    "slot-gs": dict(method="slot-gs", K=5, dense_last=True, dense_learned=True),
    "slot-ps": dict(method="slot-ps", K=4),
    "slot-ps-sample": dict(method="slot-ps", K=4, eval_mode="sample"),
    "dense": dict(method="dense", lr=0.05),
    "finetune": dict(method="finetune"),
    "iterand": dict(method="iterand", k=0.3, rerand_every=1, rerand_rate=1.0),
    "biprop": dict(method="biprop", k=0.3),
}
SAMPLED = {"supermask-sample", "slot-ps-sample"}


def train(tmp_path, model: str, case: str, **kw) -> tuple[dict, dict]:
    """A real 1-epoch trial; (final metrics, its checkpoint)."""
    spec = dict(CASES[case])
    out = tmp_path / case
    if spec["method"] == "finetune":
        train(tmp_path, model, "slot-gs")
        spec["parent"] = str(tmp_path / "slot-gs")
    cfg = TrialConfig(**{**SMALL, **MODELS_UNDER_TEST[model], **spec, **kw})
    metrics = run_trial(cfg, LocalReporter(out, progress=False))
    return metrics, torch.load(out / "checkpoint.pt", weights_only=False)


def evaluation_network(ckpt: dict, best_val: bool = False) -> nn.Module:
    """The trial's evaluation network with hiddenlab's own layers (a sampling method's
    deterministic counterpart: what the file holds)."""
    cfg = TrialConfig.from_dict(ckpt["config"])
    cfg = cfg.method_spec.exported_config(cfg)[0]
    shape, classes = nx.data_facts(cfg)
    seed_everything(cfg.seed)
    model = build_model(cfg, shape, classes)
    model.load_state_dict(ckpt["best"]["model"] if best_val else ckpt["model"])
    nx.evaluation_forward(model, shape)
    return model


def assert_plain(module: nn.Module) -> None:
    assert all(type(m).__module__.startswith("torch.") for m in module.modules())
    assert b"hiddenlab" not in pickle.dumps(module)


@pytest.mark.parametrize("model", sorted(MODELS_UNDER_TEST))
@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_is_bit_exact(tmp_path, model, case):
    metrics, ckpt = train(tmp_path, model, case)
    ex = nx.export_checkpoint(ckpt, tmp_path / "net.hlnet")
    nf = nx.read(tmp_path / "net.hlnet")
    assert_plain(nf.module)
    x = torch.randn(32, *nf.header["input_shape"])
    with torch.no_grad():
        assert torch.equal(nf.module(x), evaluation_network(ckpt)(x))
    assert ex.bytes == (tmp_path / "net.hlnet").stat().st_size
    if case in SAMPLED:  # the deterministic counterpart, said so; the trial's accuracy is not its
        assert "sampled" in nf.header["note"] and nf.header["test_acc"] is None
        assert nf.config.eval_label != "sample"
    else:
        assert nf.header["note"] is None
        assert nf.header["test_acc"] == metrics["test_acc"]
        assert nx.accuracy_on_test_set(nf) == metrics["test_acc"]


def test_best_validation_network_round_trips(tmp_path):
    metrics, ckpt = train(tmp_path, "fc", "supermask-expected", epochs=4, supermask_scale=False)
    best = ckpt["best"]
    assert best["epoch"] < 4, "the test needs a best network other than the last"
    nx.export_checkpoint(ckpt, tmp_path / "best.hlnet", best_val=True)
    nf = nx.read(tmp_path / "best.hlnet")
    assert nf.header["epoch"] == best["epoch"] and nf.header["network"] == "best-val"
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        out = nf.module(x)
        assert torch.equal(out, evaluation_network(ckpt, best_val=True)(x))
        assert not torch.equal(out, evaluation_network(ckpt)(x))
    assert nx.accuracy_on_test_set(nf) == nf.header["test_acc"] == metrics["best_val_test_acc"]
    nx.export_checkpoint(ckpt, tmp_path / "last.hlnet")   # and the last one keeps its own
    last = nx.read(tmp_path / "last.hlnet")
    assert last.header["epoch"] == 4 and nx.accuracy_on_test_set(last) == metrics["test_acc"]


def test_plain_module_runs_without_hiddenlab(tmp_path):
    _, ckpt = train(tmp_path, "conv", "edgepopup-global")
    nx.export_checkpoint(ckpt, tmp_path / "net.hlnet")
    module = hiddenlab.load(tmp_path / "net.hlnet")
    x = torch.randn(4, 3, 8, 8)
    torch.save({"module": module, "x": x, "y": module(x).detach()}, tmp_path / "plain.pt")
    script = ("import sys; sys.modules['hiddenlab'] = None\n"  # any import of hiddenlab fails
              "import torch\n"
              f"d = torch.load({str(tmp_path / 'plain.pt')!r}, weights_only=False)\n"
              "assert torch.equal(d['module'](d['x']), d['y'])\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)


# --- refusals -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ex")
    _, ckpt = train(tmp, "fc", "slot-gs")
    nx.export_checkpoint(ckpt, tmp / "net.hlnet")
    return tmp / "net.hlnet", ckpt


def rewrite(src, dst, change):
    """A consistent file (every container checksum right) whose header `change` edits."""
    header, arrays = nx.read_container(src)
    change(header)
    del header["arrays"]
    nx.write_container(dst, header, arrays)
    return dst


def refused(path) -> str:
    with pytest.raises(nx.NetFileError) as e:
        nx.read(path)
    assert str(path) in str(e.value)
    return str(e.value)


def test_corrupt_files_are_refused_naming_what(exported, tmp_path):
    path, _ = exported
    data = bytearray(path.read_bytes())
    header, arrays = nx.read_container(path)
    name = next(n for n in arrays if n.endswith("/index"))
    offset = len(data) - 32 - sum(a.nbytes for a in arrays.values())
    for n, a in arrays.items():  # the byte offset of `name`'s first byte
        if n == name:
            break
        offset += a.nbytes
    flipped = bytearray(data)
    flipped[offset] ^= 0x10
    (tmp_path / "a").write_bytes(flipped)
    assert f"array {name!r} fails its checksum" in refused(tmp_path / "a")
    (tmp_path / "b").write_bytes(data[:offset + 3])
    assert "truncated" in refused(tmp_path / "b")
    head = bytearray(data)
    head[20] ^= 0xFF
    (tmp_path / "c").write_bytes(head)
    assert "header" in refused(tmp_path / "c")
    (tmp_path / "d").write_bytes(b"PK\x03\x04" + bytes(data[4:]))
    assert "not a hiddenlab network file" in refused(tmp_path / "d")
    tail = bytearray(data)
    tail[-1] ^= 1
    (tmp_path / "e").write_bytes(tail)
    assert "file's checksum" in refused(tmp_path / "e")


def test_a_wrong_seed_is_refused_with_the_reason(exported, tmp_path):
    def reseed(h):
        h["seed"] = h["config"]["seed"] = 7
    msg = refused(rewrite(exported[0], tmp_path / "seed.hlnet", reseed))
    assert "frozen values of layer" in msg and "seed 7" in msg
    assert "the file's seed or config is not the trial's" in msg


def test_another_torch_generator_is_named(exported, tmp_path):
    def other_torch(h):
        h["torch"] = "1.13.0"
        h["layers"][1]["frozen"] = "0" * 16  # what that version's generator drew
    msg = refused(rewrite(exported[0], tmp_path / "t.hlnet", other_torch))
    layer = nx.read_container(exported[0])[0]["layers"][1]["name"]
    assert f"frozen values of layer {layer!r}" in msg and "torch 1.13.0" in msg


def test_a_wrong_evaluation_weight_is_refused(exported, tmp_path):
    def tamper(h):
        h["layers"][-1]["eval"] = "f" * 16
    assert "evaluation weight of layer" in refused(rewrite(exported[0], tmp_path / "w.hlnet",
                                                           tamper))


def test_export_refuses_values_the_seed_did_not_draw(exported, tmp_path):
    _, ckpt = exported
    ckpt = {**ckpt, "model": dict(ckpt["model"])}
    key = next(k for k in ckpt["model"] if k.endswith(".weight"))
    ckpt["model"][key] = ckpt["model"][key] + 1.0
    with pytest.raises(nx.NetFileError, match=f"frozen values {key} are not those seed 0"):
        nx.export_checkpoint(ckpt, tmp_path / "x.hlnet")


def test_changed_frozen_values_export_as_kept_values(tmp_path, monkeypatch):
    """A method whose frozen values change in training (IteRand re-draws pruned weights) declares
    KEPT_VALUES: the mask and the kept values travel, the rest is redrawn."""
    _, ckpt = train(tmp_path, "conv", "edgepopup-layer")
    g = torch.Generator().manual_seed(1)
    state = dict(ckpt["model"])
    for key in [k for k in state if k.endswith(".scores")]:
        weight = key[:-len("scores")] + "weight"
        state[weight] = torch.randn(state[weight].shape, generator=g)  # re-drawn, kept or not
    ckpt = {**ckpt, "model": state}
    monkeypatch.setattr(METHODS.get("edgepopup"), "packing", KEPT_VALUES)
    ex = nx.export_checkpoint(ckpt, tmp_path / "net.hlnet")
    nf = nx.read(tmp_path / "net.hlnet")
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(nf.module(x), evaluation_network(ckpt)(x))
    arrays = nx.read_container(tmp_path / "net.hlnet")[1]
    kept = sum(int(layer.kept().sum()) for _, layer in
               nx.selection_layers(evaluation_network(ckpt)))
    assert sum(a.size for n, a in arrays.items() if n.endswith("/values")) == kept
    assert sum(a.nbytes for a in arrays.values()) == ex.size.export_bytes
    other = sum(a.nbytes for n, a in arrays.items() if n.startswith("state/"))
    assert ex.size.bits == ex.size.connections + 32 * kept + 8 * other
    assert ex.size == nx.export_size(TrialConfig.from_dict(ckpt["config"]))


# --- sizes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,kw,bits", [("edgepopup", dict(k=0.3), 1),
                                            ("slot-gs", dict(K=8), 3)])
def test_size_is_the_theoretical_bits(tmp_path, method, kw, bits):
    cfg = TrialConfig(method=method, model="conv6", dataset="synthetic", synthetic_size=8,
                      batch_size=8, device="cpu", epochs=1, **kw)
    run_trial(cfg, LocalReporter(tmp_path, progress=False))
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    ex = nx.export_checkpoint(ckpt, tmp_path / "net.hlnet")
    connections = 2_261_184  # Conv6 (`hiddenlab models`)
    assert ex.size.connections == connections and ex.size.bits == bits * connections
    assert ex.size == nx.export_size(cfg) == nx.export_size(cfg.to_dict())
    payload = sum(a.nbytes for a in nx.read_container(tmp_path / "net.hlnet")[1].values())
    assert payload == ex.size.export_bytes
    assert ex.bytes / (bits * connections / 8) < 1.01  # header and checksums: under 1%
    assert ex.size.float32_bytes == 4 * connections


def test_sizes_from_a_results_row():
    """A results.parquet row holds every method's options (NaN where not taken)."""
    row = {**TrialConfig(method="dense", model="fc", dataset="mnist").to_dict(), "K": float("nan"),
           "k": None, "method": "slot-gs", "lr": None, "extra": "ignored"}
    size = nx.export_size(row)
    assert size.connections == 266_200 and size.bits == 3 * 266_200  # slot-gs default K = 8
    # the float32 checkpoint of a slot trial under SGD: K values and K initial scores per
    # connection, one factor per connection and one per layer (models/selection/slot.py)
    assert size.float32_bytes == 4 * 266_200
    assert size.state_bytes == (2 * 8 + 1) * 4 * 266_200 + 3 * 4


def test_index_bits_round_trip():
    rng = np.random.default_rng(0)
    for K, n in ((2, 13), (3, 8), (5, 1001), (8, 64), (16, 7), (4096, 999)):
        bits = int(np.ceil(np.log2(K)))
        index = rng.integers(0, K, n)
        packed = pack_uint(index, bits)
        assert packed.nbytes == bits * -(-n // 8)
        assert np.array_equal(unpack_uint(packed, n, bits), index)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_becomes_plain_torch_layers(name):
    cfg = TrialConfig(method="dense", model=name)
    with torch.device("meta"):
        model = build_model(cfg, MODELS.get(name).input_shape, MODELS.get(name).num_classes)
        weights = {n: l.weight for n, l in nx.selection_layers(model)}
        module = nx.plain_module(model, weights)
    assert all(type(m).__module__.startswith("torch.") for m in module.modules())


# --- the command ----------------------------------------------------------------------------------
def test_export_command(tmp_path, capsys):
    cfg = TrialConfig(**{**SMALL, **MODELS_UNDER_TEST["fc"], "method": "edgepopup", "epochs": 2,
                         "keep_epochs": (1,)})
    run = tmp_path / "run"
    run_trial(cfg, LocalReporter(run, progress=False, keep_epochs=(1,)))
    assert main(["export", str(run), "--out", str(tmp_path / "last.hlnet")]) == 0
    out = capsys.readouterr().out
    assert "epoch 2 (last network)" in out and "float32 network" in out
    assert main(["export", str(run), "--epoch", "1", "--out", str(tmp_path / "e1.hlnet")]) == 0
    assert nx.read(tmp_path / "e1.hlnet").header["epoch"] == 1
    assert main(["export", str(run), "--best-val", "--out", str(tmp_path / "b.hlnet")]) == 0
    assert main(["export", "--verify", str(tmp_path / "last.hlnet"), "--test"]) == 0
    out = capsys.readouterr().out
    assert "ok: file checksum" in out and "equal" in out
    assert main(["export", str(run), "--epoch", "5", "--out", str(tmp_path / "x")]) == 2
    assert "holds epoch(s) [1, 2], not 5" in capsys.readouterr().err
    (tmp_path / "bad.hlnet").write_bytes(b"nonsense")
    assert main(["export", "--verify", str(tmp_path / "bad.hlnet")]) == 2
    assert "not a hiddenlab network file" in capsys.readouterr().err
    assert main(["export", str(run)]) == 2 and "--out" in capsys.readouterr().err


# --- plug-ins -------------------------------------------------------------------------------------
PLUGIN = '''
import torch
from torch import nn

from hiddenlab.models.inits import init_scores, init_weights
from hiddenlab.models.selection import Method, SelectionLayer, SelectionOptions, register
from hiddenlab.models.selection.method import BASE_RECIPE
from hiddenlab.models.selection.packing import MASK_BITS


class PositiveLayer(SelectionLayer):
    """Keeps the connections whose score is positive."""

    def __init__(self, spec, weight, scores):
        super().__init__(spec)
        self.register_buffer("weight", weight)
        self.scores = nn.Parameter(scores)

    def compute_weight(self):
        mask = (self.scores > 0).detach()
        return self.weight * mask + (self.scores - self.scores.detach()) * self.weight

    def kept(self):
        return (self.scores > 0).detach()

    selection = kept


class Positive(Method):
    name = "positive"
    Options = SelectionOptions

    def recipe(self, cfg, given):
        return dict(BASE_RECIPE, schedule="constant", epochs=1)

    def layer(self, spec, cfg):
        return PositiveLayer(spec, init_weights(cfg.init, spec.shape, spec.shape),
                             init_scores("kaiming_uniform", spec.shape, spec.shape))


class PositiveBits(Positive):
    name = "positive-bits"
    packing = MASK_BITS   # the one line that makes its files one bit per connection


register(Positive())
register(PositiveBits())
'''

SCRIPT = '''
import torch
from hiddenlab.config import TrialConfig
from hiddenlab.study import netexport as nx
from hiddenlab.study.trainer import LocalReporter, run_trial

for method, bits in (("positive", 32), ("positive-bits", 1)):
    cfg = TrialConfig(method=method, model="fc", width_mult=0.25, dataset="synthetic",
                      synthetic_shape=(1, 8, 8), synthetic_size=64, device="cpu")
    run_trial(cfg, LocalReporter(method, progress=False))
    ckpt = torch.load(f"{method}/checkpoint.pt", weights_only=False)
    ex = nx.export_checkpoint(ckpt, f"{method}.hlnet")
    nf = nx.read(f"{method}.hlnet")
    assert ex.size.bits == bits * ex.size.connections, (method, ex.size)
    model = nx.redraw(cfg, (1, 8, 8), 10)
    model.load_state_dict(ckpt["model"])
    nx.evaluation_forward(model, (1, 8, 8))
    x = torch.randn(8, 1, 8, 8)
    assert torch.equal(model(x), nf.module(x)), method
'''


def test_a_plugin_method_exports_as_it_declares(tmp_path):
    """A method that declares nothing is stored as floats; one line makes it mask bits."""
    (tmp_path / "positive_method.py").write_text(PLUGIN)
    env = dict(os.environ, HIDDENLAB_PLUGINS="positive_method",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("module", ["study/netexport.py", "study/netexport_cli.py"])
def test_export_names_no_method(module):
    root = Path(hiddenlab.__file__).resolve().parents[2]
    tree = ast.parse((root / module).read_text())
    names = set(METHODS)
    assert not [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and
                isinstance(n.value, str) and n.value in names]

"""Packed trials (study/packing.py, study/packs.py): a member of a pack computes what the same
trial computes alone, for every method (sampling ones and dropout through per-member random
streams), on FC, conv and BatchNorm networks; a diverging member fails alone; a killed pack
resumes to the same numbers; a packed study through Ray gives one results row per member per
epoch under the unpacked run ids."""

from __future__ import annotations

import math

import pytest
import torch

from hiddenlab.config import ConfigError, TrialConfig
from hiddenlab.study import export, packs
from hiddenlab.study.packing import LocalPackReporter, pack_key, run_pack
from hiddenlab.study.registry import Study
from hiddenlab.study.runner import RunOptions, plan_study, run_study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.trainer import LocalReporter, run_trial

DATA = dict(dataset="synthetic", synthetic_size=128, batch_size=32, eval_batch_size=64,
            device="cpu", epochs=2, schedule="cosine", threads=1)
MODELS = {"fc": dict(model="fc", width_mult=0.1, synthetic_shape=(1, 8, 8)),
          "conv": dict(model="conv2", width_mult=0.125, synthetic_shape=(3, 8, 8)),
          "dropout": dict(model="slot-conv2", width_mult=0.125, synthetic_shape=(3, 8, 8)),
          "bn": dict(model="cifar-resnet18", width_mult=0.0625, synthetic_shape=(3, 8, 8))}
# Members differ in seed (so in data order and draws) and in per-trial values.
MEMBERS = {
    "dense": [dict(seed=0, lr=0.05), dict(seed=1, lr=0.02, momentum=0.5)],
    "edgepopup": [dict(seed=0, k=0.5), dict(seed=1, k=0.3, lr=0.05),
                  dict(seed=0, k=0.7, topk_scope="global")],
    "slot-gs": [dict(seed=0, K=4), dict(seed=2, K=2, schedule="constant")],
    "supermask": [dict(seed=0, lr=100.0), dict(seed=1, lr=50.0, weight_decay=0.0)],
    "slot-ps": [dict(seed=0, K=4, lr=25.0), dict(seed=1, K=2, lr=10.0)],
}
# Float tolerance: a grouped convolution rounds like the plain one on these CPUs, but BatchNorm
# over N*C channels sums its batch statistics in another order (~1e-7 relative), which a few SGD
# steps through a residual network amplify to ~1e-4.
TOL = {"bn": 2e-3}
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "test_loss",
           "best_val_acc", "best_val_test_acc", "flip_rate", "kept_fraction", "lr")


def configs(method: str, model: str) -> list[TrialConfig]:
    return [TrialConfig(method=method, **{**DATA, **MODELS[model], **kw})
            for kw in MEMBERS[method]]


def assert_same_trial(alone: dict, packed: dict, alone_state: dict, packed_state: dict,
                      tol: float = 1e-5):
    for key in METRICS:
        a, p = alone.get(key), packed.get(key)
        if isinstance(a, float) and math.isnan(a):
            assert math.isnan(p), key
        else:
            assert p == pytest.approx(a, rel=tol, abs=tol / 10), key
    assert alone["epoch"] == packed["epoch"] and packed["done"]
    assert alone_state.keys() == packed_state.keys()
    for name, value in alone_state.items():
        torch.testing.assert_close(packed_state[name], value, rtol=tol, atol=tol, msg=name)


@pytest.mark.parametrize("method,model", [
    ("dense", "fc"), ("dense", "conv"), ("dense", "bn"),
    ("edgepopup", "fc"), ("edgepopup", "conv"),
    ("slot-gs", "fc"), ("slot-gs", "conv"),
    ("supermask", "conv"), ("slot-ps", "dropout"), ("slot-ps", "bn"),
])
def test_packed_members_equal_their_trials_alone(method, model, tmp_path):
    cfgs = configs(method, model)
    packed = run_pack(cfgs, LocalPackReporter(tmp_path / "pack"))
    pack_state = torch.load(tmp_path / "pack" / "checkpoint.pt", weights_only=False)
    assert sorted(pack_state["members"]) == sorted(c.run_id() for c in cfgs)
    for i, cfg in enumerate(cfgs):
        alone = run_trial(cfg, LocalReporter(tmp_path / str(i), progress=False))
        alone_state = torch.load(tmp_path / str(i) / "checkpoint.pt", weights_only=False)
        member = pack_state["members"][cfg.run_id()]
        assert_same_trial(alone, packed[cfg.run_id()], alone_state["model"], member["model"],
                          TOL.get(model, 1e-5))
        assert member["config"] == alone_state["config"]
        lines = (tmp_path / "pack" / cfg.run_id() / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == cfg.epochs


class Killed(Exception):
    pass


class KillAfter(LocalPackReporter):
    def __init__(self, out, n):
        super().__init__(out)
        self.n = n

    def report(self, epoch, members, state, artifacts):
        super().report(epoch, members, state, artifacts)
        if epoch == self.n:
            raise Killed


def test_a_killed_pack_resumes_every_member_exactly(tmp_path):
    cfgs = [c.replace(epochs=3) for c in configs("supermask", "conv")]
    straight = run_pack(cfgs, LocalPackReporter(tmp_path / "a"))
    with pytest.raises(Killed):
        run_pack(cfgs, KillAfter(tmp_path / "b", 1))
    resumed = run_pack(cfgs, LocalPackReporter(tmp_path / "b"))
    for cfg in cfgs:
        for key in METRICS:
            assert resumed[cfg.run_id()][key] == straight[cfg.run_id()][key], key
        lines = (tmp_path / "b" / cfg.run_id() / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 3
    # a finished pack trains nothing again
    again = run_pack(cfgs, LocalPackReporter(tmp_path / "b"))
    assert {r: m["test_acc"] for r, m in again.items()} == \
        {r: m["test_acc"] for r, m in resumed.items()}


def test_a_diverging_member_fails_alone(tmp_path):
    good, bad = TrialConfig(method="dense", **DATA, **MODELS["fc"], lr=0.05), \
        TrialConfig(method="dense", **DATA, **MODELS["fc"], lr=1e6)
    out = run_pack([good, bad], LocalPackReporter(tmp_path / "p"))
    assert out[bad.run_id()]["fatal"] and out[bad.run_id()]["diverged"]
    with pytest.raises(Exception) as alone:
        run_trial(bad, LocalReporter(tmp_path / "bad", progress=False))
    assert out[bad.run_id()]["error"] == f"TrialDiverged: {alone.value}"
    assert (tmp_path / "p" / bad.run_id() / "error.txt").exists()
    ref = run_trial(good, LocalReporter(tmp_path / "good", progress=False))
    assert out[good.run_id()]["test_acc"] == pytest.approx(ref["test_acc"], abs=1e-6)
    assert out[good.run_id()]["done"]


# --- planning ----------------------------------------------------------------------------------------
def small_study(name: str, pack: int = 1) -> Study:
    def phases(scale):
        return [Phase("p", [
            Series("ep", dict(method="edgepopup", **DATA, **MODELS["fc"]),
                   axes={"k": [0.1, 0.3, 0.5, 0.7, 0.9], "lr": [0.1, 0.05]}),
            Series("wide", dict(method="edgepopup", **DATA, **{**MODELS["fc"], "width_mult": 0.2})),
            Series("dense", dict(method="dense", **DATA, **MODELS["fc"])),
        ])]
    return Study(name, "packing test", (), phases, seeds={"smoke": 2, "paper": 2}, pack=pack)


def test_packs_group_by_architecture_and_data_balanced():
    plan = small_study("packplan").plan("smoke")
    groups = packs.group(plan.trials, 8)
    # 20 edge-popup trials in 3 packs of 7, 7, 6; the wider ones and the dense ones apart
    assert sorted(len(g) for g in groups) == [2, 2, 6, 7, 7]
    assert sorted(t.run_id for g in groups for t in g) == sorted(t.run_id for t in plan.trials)
    for g in groups:
        assert len({pack_key(t.cfg) for t in g}) == 1
        assert len({t.run_id for t in g}) == len(g)
    assert len({packs.pack_id(g) for g in groups}) == len(groups)
    assert packs.count(plan.trials, 1) == len(plan.trials)
    # the study's own pack size, unless the run gives one
    assert packs.pack_size(small_study("p", pack=4), RunOptions()) == 4
    assert packs.pack_size(small_study("p", pack=4), RunOptions(pack=1)) == 1
    assert packs.experiment_name("smoke-p-ab12", 4) == "smoke-p-ab12-pack4"


def test_what_cannot_pack_is_refused_before_ray(tmp_path):
    opts = RunOptions(storage=str(tmp_path), scale="smoke", pack=4, overrides=["compile=true"],
                      verbose=0)
    with pytest.raises(ConfigError, match="compile"):
        plan_study(small_study("packcompile"), opts)
    with pytest.raises(ConfigError, match="pack"):
        RunOptions(pack=0).validate()
    with pytest.raises(ConfigError, match="share"):
        run_pack([TrialConfig(method="dense", **DATA, **MODELS["fc"]),
                  TrialConfig(method="dense", **DATA, **MODELS["conv"])],
                 LocalPackReporter(tmp_path))


def test_a_pack_record_expands_into_its_members():
    members = [{"run_id": "a", "method": "dense"}, {"run_id": "b", "method": "dense"},
               {"run_id": "c", "method": "dense"}]
    rows = [{"epoch": 1, "hostname": "h", "timestamp": 1.0, "members": {
                "a": {"epoch": 1, "val_acc": 0.5}, "b": {"epoch": 1, "val_acc": 0.4},
                "c": {"fatal": True, "error": "TrialDiverged: loss is nan at epoch 1"}}},
            {"epoch": 2, "hostname": "h", "timestamp": 2.0, "members": {
                "a": {"epoch": 2, "val_acc": 0.6, "done": True},
                "b": {"epoch": 2, "val_acc": 0.5, "done": True}}}]
    rec = export.TrialRecord(run_id="pack3-x", config={packs.PACK_KEY: members, "run_id": "p"},
                             status="TERMINATED", experiment="e", trial_id="t1", results=rows)
    out = {r.run_id: r for r in packs.expand(rec)}
    assert sorted(out) == ["a", "b", "c"]
    assert [r["val_acc"] for r in out["a"].results] == [0.5, 0.6]
    assert out["a"].status == "TERMINATED" and out["a"].error is None
    assert out["a"].results[0]["hostname"] == "h" and out["a"].trial_id == "t1"
    assert out["c"].status == "ERROR" and out["c"].finished and out["c"].results == []
    assert out["c"].error.startswith("TrialDiverged")
    running = packs.expand(export.TrialRecord(
        run_id="p", config={packs.PACK_KEY: members}, status="RUNNING", experiment="e",
        trial_id="t1", results=rows[:1]))
    assert {r.run_id: r.status for r in running} == {"a": "RUNNING", "b": "RUNNING",
                                                     "c": "ERROR"}


@pytest.mark.timeout(900)
def test_a_packed_study_gives_the_unpacked_rows(ray_session, tmp_path):
    """The same study unpacked and with packs of 8: the same run ids, one row per member per
    epoch, the same numbers; a re-run skips every finished member."""
    def phases(scale):
        return [Phase("p", [
            Series("ep", dict(method="edgepopup", **DATA, **MODELS["fc"]),
                   axes={"k": [0.3, 0.7]}),
            Series("gs", dict(method="slot-gs", **DATA, **MODELS["fc"], K=2,
                              keep_epochs=(1,))),
        ])]
    study = Study("packray", "t", (), phases, seeds={"smoke": 2, "paper": 2})
    tables = {}
    for pack in (1, 8):
        opts = RunOptions(scale="smoke", storage=str(tmp_path / str(pack)), verbose=0,
                          figures=False, pack=pack)
        summary = run_study(study, opts)
        assert summary.ok, summary.counts
        tables[pack] = export.load(opts.storage, study.name).sort_values(["run_id", "epoch"])
    alone, packed = tables[1], tables[8]
    assert list(packed.run_id) == list(alone.run_id)
    assert list(packed.epoch) == list(alone.epoch) and len(packed) == 6 * 2
    assert (packed.status == "TERMINATED").all()
    assert packed.experiment.str.endswith("-pack8").all()
    assert packed.trial_id.nunique() == 2  # edge-popup and slot-gs: one Tune trial each
    for col in ("train_loss", "val_acc", "test_acc", "flip_rate", "kept_fraction"):
        torch.testing.assert_close(torch.tensor(packed[col].to_numpy()),
                                   torch.tensor(alone[col].to_numpy()), rtol=1e-5, atol=1e-6,
                                   equal_nan=True, msg=col)
    # members' artifacts and kept epochs sit under their own run ids
    for rid in set(packed[packed.method == "slot-gs"].run_id):
        root = tmp_path / "8" / study.name
        assert (root / "checkpoints" / rid / "epoch_1.pt").is_file()
        assert (root / "artifacts" / rid / "selection.json").is_file()
    again = run_study(study, RunOptions(scale="smoke", storage=str(tmp_path / "8"), verbose=0,
                                        figures=False, pack=8))
    assert again.skipped == 6 and again.ok

"""Study spaces, registry and validation: everything that happens before Ray starts (no Ray)."""

from __future__ import annotations

import collections
import json

import pytest

from hiddenlab.config import ConfigError, TrialConfig
from hiddenlab.study.registry import NO_TRIALS, get_study, studies
from hiddenlab.study.runner import RunOptions, plan_study
from hiddenlab.study.spaces import (META_KEYS, ChildSeries, Phase, Series, config_from_ray,
                                    expand, param_space, parse_overrides, parse_value)

FIGURE_STUDIES = ["ep-fig3", "ep-fig4", "ep-fig5", "ep-fig6", "ep-fig7", "ep-fig8", "ep-fig9",
                  "ep-fig10", "sm-k", "sm-gs-ps", "sm-finetune", "sm-related", "scaling-laws"]
# Follow-up methods against edge-popup (tests/test_iterand.py, tests/test_biprop.py expand them).
FOLLOWUP_STUDIES = ["iterand-k", "biprop-k"]


def test_every_figure_has_a_study():
    names = set(studies())
    assert set(FIGURE_STUDIES) | set(FOLLOWUP_STUDIES) | {"quickstart", "real-data"} == names
    fed = {f for s in studies().values() for f in s.feeds}
    assert "ep-table2" in fed  # Table 2 reads Fig 8's trials
    for name in ("ep-table1", "sm-setup", "flip-rate", "selected-weights"):
        assert name in NO_TRIALS


@pytest.mark.parametrize("name", ["quickstart", *FIGURE_STUDIES])
def test_study_expands_and_validates_at_both_scales(name):
    study = get_study(name)
    smoke, paper = study.plan("smoke"), study.plan("paper")
    for plan in (smoke, paper):
        ids = [t.run_id for t in plan.trials]
        assert ids and len(ids) == len(set(ids))
        for t in plan.trials:
            assert isinstance(t.cfg, TrialConfig) and t.cfg.run_id() == t.run_id
    assert len(paper.seeds) == (2 if name == "quickstart" else 5)
    # smoke: every series and point of the figure, fewer seeds, tiny data
    assert _shape(smoke) == _shape(paper)
    for t in smoke.trials:
        assert t.cfg.dataset in ("synthetic", "digits"), t.run_id
        assert t.cfg.epochs <= 6


def _shape(plan):
    """Series -> number of trials per seed (the figure's points), per phase."""
    counts = collections.Counter((t.phase, t.series) for t in plan.trials)
    return {k: v / len(plan.seeds) for k, v in counts.items()}


def test_paper_scale_follows_the_recipes():
    fig3 = get_study("ep-fig3").plan("paper")
    by_series = collections.defaultdict(list)
    for t in fig3.trials:
        by_series[t.series].append(t.cfg)
    ep = by_series["edge-popup N_k"][0]
    assert (ep.dataset, ep.lr, ep.momentum, ep.weight_decay, ep.batch_size, ep.schedule,
            ep.epochs) == ("cifar10", 0.1, 0.9, 1e-4, 128, "cosine", 100)
    assert sorted({c.k for c in by_series["edge-popup U_k"]}) == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert {c.init for c in by_series["edge-popup U_k"]} == {"signed_constant"}
    adam = {c.model: c for c in by_series["learned dense (Adam)"]}
    assert adam["conv2"].lr == 2e-4 and adam["conv6"].lr == 3e-4 and adam["conv6"].batch_size == 60
    assert {c.lr for c in by_series["learned dense (SGD)"]} == {0.01}
    assert sorted({t.cfg.seed for t in fig3.trials}) == [0, 1, 2, 3, 4]

    slots = get_study("sm-gs-ps").plan("paper").trials
    for t in slots:
        c = t.cfg
        want = 25.0 if c.method == "slot-ps" else (0.2 if c.K <= 8 else 0.1)
        assert c.lr == want and c.schedule == "sgdr" and tuple(c.restarts) == (25, 75)
    assert {t.cfg.K for t in slots} == {2, 4, 8, 16, 32, 64}

    imagenet = get_study("ep-fig8").plan("paper").trials
    for t in imagenet:
        assert t.cfg.dataset == "imagenet" and t.cfg.lr == 0.256 and t.cfg.warmup_epochs == 5
    assert {t.cfg.keep for t in imagenet if t.cfg.method == "edgepopup"} == {0.3}


@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_fig5_keeps_the_subnetwork_size_constant(scale):
    from hiddenlab.models import count_params

    plan = get_study("ep-fig5").plan(scale)
    sizes = collections.defaultdict(set)
    for t in plan.trials:
        c = t.cfg
        shape = tuple(c.synthetic_shape) if c.dataset == "synthetic" else None
        n = count_params(c.model, width_mult=c.width_mult, depth=c.depth, input_shape=shape)
        assert 0 < c.k <= 1
        sizes[t.series].add(round(c.k * n, -1))
    for series, values in sizes.items():
        assert max(values) - min(values) <= 20, (series, values)   # k is rounded to 1e-6
    assert len({s.split(" (")[0] for s in sizes}) == 3  # c1, c2, c3
    widths = {t.cfg.width_mult for t in plan.trials}
    assert len(widths) >= 5


def test_finetune_children_point_at_kept_parent_epochs():
    plan = get_study("sm-finetune").plan("paper", parent_dir=lambda rid: f"/store/ck/{rid}")
    slots, finetune = plan.phases
    parents = {t.run_id: t for t in slots.trials if t.cfg.method == "slot-gs"}
    assert len(finetune.trials) == len(parents) * 5
    for t in finetune.trials:
        c = t.cfg
        parent = parents[t.parent_run_id].cfg
        assert c.method == "finetune" and c.parent == f"/store/ck/{t.parent_run_id}"
        assert c.parent_epoch in parent.keep_epochs
        assert (c.model, c.seed, c.dataset, c.width_mult) == (parent.model, parent.seed,
                                                             parent.dataset, parent.width_mult)
        learned = {"slot-conv2": 200, "slot-conv4": 330, "slot-conv6": 330}[c.model]
        assert c.parent_epoch + c.epochs == learned   # equal budget with training from scratch


def test_param_space_is_built_from_trialconfig_fields():
    from ray import tune
    from ray.tune.search.variant_generator import generate_variants

    plan = get_study("ep-fig7").plan("smoke")
    trials = plan.trials[:4]
    space = param_space(trials, "ep-fig7", "smoke")
    assert set(space) == {k for t in trials for k in t.cfg.to_dict()} | set(META_KEYS)
    assert space["run_id"] == tune.grid_search([t.run_id for t in trials])
    resolved = [cfg for _, cfg in generate_variants(space)]
    assert len(resolved) == len(trials)
    for cfg, t in zip(resolved, trials):
        assert config_from_ray(cfg).run_id() == cfg["run_id"] == t.run_id
        assert cfg["series"] == t.series and cfg["study"] == "ep-fig7"


def test_config_from_ray_refuses_a_mismatched_run_id():
    cfg = TrialConfig(dataset="digits", model="fc", method="dense")
    d = cfg.to_dict()
    d["run_id"] = "dense-fc-0000000000"
    with pytest.raises(ConfigError) as e:
        config_from_ray(d)
    assert e.value.field == "run_id"


# --- malformed values are refused naming the field, before Ray ---------------------------------
@pytest.mark.parametrize("fixed, axes, field", [
    ({"method": "edgepopup", "model": "conv4"}, {"k": [0.5, 1.5]}, "k"),
    ({"method": "edgepopup", "model": "conv4"}, {"K": [4]}, "K"),
    ({"method": "dense", "model": "nope"}, {}, "model"),
    ({"method": "dense", "model": "fc", "lr": "fast"}, {}, "lr"),
    ({"method": "dense", "model": "fc", "epochs": 2.5}, {}, "epochs"),
    ({"method": "dense", "model": "fc", "weight_decay": float("nan")}, {}, "weight_decay"),
    ({"method": "dense", "model": "fc", "bogus": 1}, {}, "bogus"),
    ({"method": "dense", "model": "fc"}, {"width_mult": [1.0, -2.0]}, "width_mult"),
    ({"method": "dense", "model": "fc"}, {"depth": [4]}, "depth"),
    ({"method": "slot-gs", "model": "conv2"}, {"K": [0]}, "K"),
    ({"method": "dense", "model": "fc"}, {"lr": []}, "lr"),
    ({"method": "dense", "model": "fc"}, {"lr": 0.1}, "lr"),
])
def test_bad_space_values_name_the_field(fixed, axes, field):
    with pytest.raises(ConfigError) as e:
        expand("t", [Phase("main", [Series("s", fixed, axes)])], "smoke", [0])
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}:")


def test_child_series_needs_kept_epochs_and_known_parents():
    parent = Series("p", {"method": "slot-gs", "model": "fc", "keep_epochs": (2,)})
    bad_epoch = ChildSeries("c", ["p"], [3], {"method": "finetune"})
    with pytest.raises(ConfigError) as e:
        expand("t", [Phase("a", [parent]), Phase("b", [bad_epoch])], "smoke", [0])
    assert e.value.field == "keep_epochs"
    orphan = ChildSeries("c", ["nobody"], [2], {"method": "finetune"})
    with pytest.raises(ConfigError) as e:
        expand("t", [Phase("a", [parent]), Phase("b", [orphan])], "smoke", [0])
    assert e.value.field == "parent"


def test_duplicate_points_are_merged():
    a = Series("a", {"method": "dense", "model": "fc"}, {"lr": [0.1, 0.2]})
    b = Series("b", {"method": "dense", "model": "fc"}, {"lr": [0.2, 0.3]})
    plan = expand("t", [Phase("main", [a, b])], "smoke", [0, 1])
    assert len(plan) == 6
    assert sorted({t.series for t in plan.trials}) == ["a", "a+b", "b"]


def test_overrides_are_typed_and_checked():
    assert parse_overrides(["epochs=3", "device=cpu", "depth=none", "keep_epochs=1,2",
                            "score_abs=false", "width-mult=0.5"]) == {
        "epochs": 3, "device": "cpu", "depth": None, "keep_epochs": (1, 2), "score_abs": False,
        "width_mult": 0.5}
    assert parse_value("lr", "200") == 200.0 and isinstance(parse_value("lr", "200"), float)
    for item, field in (("epochs=three", "epochs"), ("nope=1", "nope"), ("seed=3", "seed"),
                        ("epochs", "set"), ("channels_last=maybe", "channels_last"),
                        ("epochs=none", "epochs")):
        with pytest.raises(ConfigError) as e:
            parse_overrides([item])
        assert e.value.field == field, item
    plan = get_study("quickstart").plan("smoke", overrides=parse_overrides(["epochs=3"]))
    assert {t.cfg.epochs for t in plan.trials if t.cfg.method != "finetune"} == {3}
    with pytest.raises(ConfigError) as e:   # an override that makes a trial invalid
        get_study("quickstart").plan("smoke", overrides={"K": 1})
    assert e.value.field == "K"
    # a method option reaches the methods that take it, and only them
    plan = get_study("quickstart").plan("smoke", overrides={"K": 4})
    assert {t.cfg.K for t in plan.trials if t.cfg.method.startswith("slot")} == {4}
    assert "dense" in {t.cfg.method for t in plan.trials}
    with pytest.raises(ConfigError, match="no trial of study ep-fig3 takes K"):
        get_study("ep-fig3").plan("smoke", overrides={"K": 4})


def test_int_and_float_spellings_name_the_same_trial():
    a = expand("t", [Phase("m", [Series("s", {"method": "dense", "model": "fc", "lr": 1})])],
               "smoke", [0])
    b = expand("t", [Phase("m", [Series("s", {"method": "dense", "model": "fc", "lr": 1.0})])],
               "smoke", [0])
    assert a.trials[0].run_id == b.trials[0].run_id


# --- study arguments ------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, field", [
    ({"scale": "huge"}, "scale"),
    ({"address": "not an address"}, "address"),
    ({"address": "ray://host:99999"}, "address"),
    ({"gpus_per_trial": -1}, "gpus_per_trial"),
    ({"gpus_per_trial": 1.5}, "gpus_per_trial"),
    ({"cpus_per_trial": -2}, "cpus_per_trial"),
    ({"cpus_per_trial": 0, "gpus_per_trial": 0}, "cpus_per_trial"),
    ({"max_concurrent": 0}, "max_concurrent"),
    ({"seeds": 0}, "seeds"),
    ({"max_failures": -5}, "max_failures"),
    ({"num_cpus": 0}, "num_cpus"),
    ({"num_cpus": 2, "address": "auto"}, "num_cpus"),
    ({"overrides": ["epochs=-1"]}, "epochs"),
    ({"overrides": ["optimizer=rmsprop"]}, "optimizer"),
    ({"storage": ""}, "storage"),
    ({"seeds": [0, -1]}, "seeds"),
    ({"overrides": ["device=cpu"], "gpus_per_trial": 0.5}, "device"),
])
def test_bad_run_options_name_the_field(kw, field):
    import ray

    with pytest.raises(ConfigError) as e:
        plan_study("quickstart", RunOptions(**kw))
    assert e.value.field == field
    assert not ray.is_initialized()


def test_storage_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError) as e:
        plan_study("quickstart", RunOptions(storage=str(f)))
    assert e.value.field == "storage"


def test_unknown_study_names_the_field():
    with pytest.raises(ConfigError) as e:
        get_study("ep-table1")
    assert e.value.field == "study" and "computed from the models" in str(e.value)


# --- the command line -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, field", [
    (["study", "run", "nope"], "study"),
    (["study", "run", "quickstart", "--scale", "big"], "scale"),
    (["study", "run", "quickstart", "--gpus-per-trial", "half"], "gpus_per_trial"),
    (["study", "run", "quickstart", "--cpus-per-trial", "-1"], "cpus_per_trial"),
    (["study", "run", "quickstart", "--max-concurrent", "0"], "max_concurrent"),
    (["study", "run", "quickstart", "--seeds", "x"], "seeds"),
    (["study", "run", "quickstart", "--address", "ray:/oops"], "address"),
    (["study", "run", "quickstart", "--set", "lr=-1"], "lr"),
    (["study", "run", "quickstart", "--set", "wat=1"], "wat"),
    (["study", "show", "nope"], "study"),
])
def test_cli_refuses_bad_arguments_before_ray(argv, field, capsys, tmp_path):
    import ray

    from hiddenlab.cli import main

    code = main([*argv, "--storage", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {field}:" in err
    assert not ray.is_initialized()
    assert not (tmp_path / "quickstart").exists()


def test_cli_list(capsys):
    from hiddenlab.cli import main

    assert main(["study", "list"]) == 0
    out = capsys.readouterr().out
    for name in ["quickstart", *FIGURE_STUDIES]:
        assert name in out
    line = next(ln for ln in out.splitlines() if ln.startswith("ep-fig8"))
    assert "ep-table2" in line and " 10 " in line and " 50 " in line
    assert "ep-table1" in out and "sm-setup" in out


def test_run_ids_do_not_depend_on_the_scale_of_other_studies():
    """Same point in two studies (sm-k GS and sm-gs-ps GS) = same run id."""
    a = {t.run_id for t in get_study("sm-k").plan("smoke").trials if t.cfg.method == "slot-gs"}
    b = {t.run_id for t in get_study("sm-gs-ps").plan("smoke").trials
         if t.cfg.method == "slot-gs"}
    assert a == b
    assert json.dumps(sorted(a))

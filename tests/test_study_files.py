"""Study files (YAML and Python), sampled fields and Tune settings: everything decided before Ray
starts. No Ray runtime here: bad files must be refused without one."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from hiddenlab.cli import main
from hiddenlab.config import ConfigError, all_fields, check_value
from hiddenlab.study import Phase, Series, Study, choice, loguniform, plan, randint
from hiddenlab.study.registry import get_study
from hiddenlab.study.reporter import plain_point
from hiddenlab.study.runner import RunOptions, run_study
from hiddenlab.study.spaces import Sample, expand, sampled_space
from hiddenlab.study.tuning import TuneSettings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BASE = """
name: t
fixed: {dataset: digits, model: fc, epochs: 2, num_workers: 0}
"""


def write(tmp_path, body: str, name: str = "s.yaml", base: str = BASE) -> Path:
    """A study file: `base` (the shared fields) and then `body`."""
    path = tmp_path / name
    path.write_text(base + textwrap.dedent(body))
    return path


# --- the examples plan as documented --------------------------------------------------------------
@pytest.mark.parametrize("name, smoke, paper", [
    ("asha-slot-ps-lr.yaml", 8, 8), ("optuna-edgepopup.yaml", 8, 8),
    ("scaling-width-depth.yaml", 18, 18), ("fixed_subnetwork.py", 12, 12)])
def test_examples_plan(name, smoke, paper, tmp_path):
    for scale, n in (("smoke", smoke), ("paper", paper)):
        p = plan(str(EXAMPLES / name), scale=scale, storage=str(tmp_path))
        assert len(p) == n
    assert not (tmp_path / get_study(str(EXAMPLES / name)).name).exists()   # nothing written


def test_yaml_study_expands_series_grid_seeds_and_phases(tmp_path):
    path = write(tmp_path, """
        seeds: [0, 1]
        smoke: {subset: 128}
        series:
          - label: ep
            fixed: {method: edgepopup, keep_epochs: [1]}
            grid: {k: [0.3, 0.5]}
          - label: dense
            fixed: {method: dense, lr: 0.05}
        phases:
          - name: finetune
            series:
              - label: ft
                parents: [ep]
                start_epochs: [1]
                parent_where: {k: 0.5}
                budget: 2
                fixed: {method: finetune, lr: 0.01}
        """)
    study = get_study(str(path))
    p = study.plan("smoke")
    assert [len(ph.trials) for ph in p.phases] == [6, 2]   # 2 k x 2 seeds + 2 dense; children
    assert {t.cfg.subset for t in p.trials} == {128}       # smoke fields everywhere
    ep = [t for t in p.trials if t.series == "ep"]
    assert sorted({t.cfg.k for t in ep}) == [0.3, 0.5] and {t.cfg.seed for t in ep} == {0, 1}
    children = p.phases[1].trials
    parents = {t.run_id: t.cfg for t in ep}
    assert all(parents[c.parent_run_id].k == 0.5 for c in children)
    assert {(c.cfg.method, c.cfg.epochs, c.cfg.parent_epoch) for c in children} == \
        {("finetune", 1, 1)}
    assert study.plan("paper").trials[0].cfg.subset is None


# --- refused before Ray, naming the file, the series and the field --------------------------------
@pytest.mark.parametrize("body, field, words", [
    ("series: [{label: a, fixed: {method: dense, bogus: 1}}]", "bogus", "unknown field"),
    ("series: [{label: a, fixed: {method: dense}, sample: {lr: {lognormal: [1, 2]}}}]", "lr",
     "not a distribution"),
    ("series: [{label: a, fixed: {method: dense}, sample: {lr: {loguniform: [0, 1]}}}]", "lr",
     "log scale"),
    ("series: [{label: a, fixed: {method: dense}, sample: {lr: {uniform: [1, 0.1]}}}]", "lr",
     "lower bound"),
    ("series: [{label: a, fixed: {method: edgepopup}, sample: {k: {uniform: [0.5, 1.5]}}}]", "k",
     "outside"),
    ("series: [{label: a, fixed: {method: slot-gs}, sample: {K: {uniform: [2, 8]}}}]", "K",
     "integer field"),
    ("series: [{label: a, fixed: {method: dense}, sample: {momentum: {choice: [0.9, 1.2]}}}]",
     "momentum", "outside"),
    ("series: [{label: a, fixed: {method: dense}, sample: {init: {choice: [nope]}}}]", "init",
     "not one of"),
    ("series: [{label: a, fixed: {method: dense}, sample: {k: {uniform: [0.1, 0.9]}}}]", "k",
     "does not take k"),
    ("series: [{label: a, fixed: {method: dense}, grid: {lr: 0.1}}]", "lr", "a list"),
    ("series: [{label: a, fixed: {method: dense, epochs: 2.5}}]", "epochs", "not an integer"),
    ("series: [{label: a, fixed: {method: dense}, colour: red}]", "colour", "unknown key"),
    ("serie: []\nseries: [{label: a}]", "serie", "unknown key"),
    ("series: [{label: a, fixed: {method: dense, schedule: constant}, "
     "sample: {warmup_epochs: {uniform: [0.5, 1.0]}}}]", "warmup_epochs", "only the cosine"),
    ("series: [{label: a, fixed: {method: dense}}]\ntune: {scheduler: {name: asha, "
     "grace: 1}}", "scheduler.asha.grace", "unknown option"),
    ("series: [{label: a, fixed: {method: dense}}]\ntune: {scheduler: bohb}", "scheduler",
     "not one of"),
    ("series: [{label: a, fixed: {method: dense}}]\ntune: {metric: test_acc}", "metric",
     "every epoch"),
    ("series: [{label: a, fixed: {method: dense}}]\ntune: {num_samples: 4}", "num_samples",
     "no series samples"),
    ("series: [{label: a, fixed: {method: edgepopup}, grid: {init: [signed_constant, "
     "kaiming_normal]}, sample: {k: {uniform: [0.1, 0.9]}}}]\ntune: {search: optuna}",
     "search", "grid over init"),
])
def test_bad_study_files_are_refused_before_ray(body, field, words, tmp_path):
    import ray

    path = write(tmp_path, body)
    storage = tmp_path / "results"
    with pytest.raises(ConfigError) as e:
        run_study(str(path), RunOptions(storage=str(storage), verbose=0))
    assert e.value.field == field, str(e.value)
    assert words in str(e.value) and str(path) in str(e.value)
    if field in all_fields() or field == "colour":   # a series' own error names the series
        assert "series 'a'" in str(e.value)
    assert not ray.is_initialized() and not storage.exists()


def test_cli_names_file_series_and_field(tmp_path, capsys):
    path = write(tmp_path, """
        series:
          - label: lr sweep
            fixed: {method: dense}
            sample: {lr: {loguniform: [1e-3, 1e7]}}
        """)
    assert main(["study", "run", str(path), "--storage", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hiddenlab: error: lr:") and "lr sweep" in err and str(path) in err
    assert "1e+07 is outside" in err


def test_a_python_study_file_needs_a_study(tmp_path):
    path = write(tmp_path, "X = 1\n", "nostudy.py", base="")
    with pytest.raises(ConfigError, match="defines no STUDY"):
        get_study(str(path))
    with pytest.raises(ConfigError, match="built-in study"):
        get_study(str(write(tmp_path, "series: [{label: a, fixed: {method: dense}}]",
                            base=BASE.replace("name: t", "name: ep-fig3"))))


# --- distributions: what we validate is what Tune draws ------------------------------------------
@pytest.mark.parametrize("name, dist", [
    ("lr", Sample("loguniform", (1e-3, 10.0))), ("k", Sample("uniform", (0.05, 0.95))),
    ("weight_decay", Sample("quniform", (0.0, 1e-3, 1e-4))), ("K", Sample("randint", (2, 9))),
    ("K", Sample("qrandint", (2, 17, 2))), ("epochs", Sample("lograndint", (1, 50))),
    ("init", Sample("choice", (["kaiming_normal", "signed_constant"],))),
])
def test_tune_draws_stay_inside_the_validated_corners(name, dist):
    import numpy as np

    f = all_fields()[name]
    dist.check(f)
    corners = dist.corners()
    draws = dist.tune().sample(size=300, random_state=np.random.RandomState(0))
    ours = [dist.draw(random.Random(i)) for i in range(300)]
    for v in [plain_point({name: d})[name] for d in draws] + ours:
        check_value(f, v)   # in the field's range
        if dist.kind != "choice":
            assert min(corners) - 1e-12 <= v <= max(corners) + 1e-12, (v, corners)
        else:
            assert v in corners


def test_sampled_space_repeats_the_grid_per_sample():
    from ray.tune.search.variant_generator import generate_variants

    series = Series("ps", dict(method="slot-ps", model="fc", dataset="digits", epochs=2),
                    axes={"K": [2, 8]}, sample={"lr": loguniform(1, 300)})
    p = expand("t", [Phase("main", [series])], "smoke", [0, 1], num_samples=3)
    assert len(p) == 2 * 2 * 3 and not p.trials
    space = sampled_space(p.sampled[0], "t", "smoke")
    variants = [cfg for _ in range(3) for _, cfg in generate_variants(space)]
    assert len(variants) == len(p)
    assert sorted({(v["K"], v["seed"]) for v in variants}) == [(2, 0), (2, 1), (8, 0), (8, 1)]
    assert len({v["lr"] for v in variants}) == len(variants)   # fresh draws
    assert all(1 <= v["lr"] <= 300 and v["series"] == "ps" for v in variants)


@pytest.mark.parametrize("search", ["optuna", "hyperopt"])
def test_model_based_searchers_propose_the_asked_number_of_points(search):
    series = Series("ep", dict(method="edgepopup", model="fc", dataset="digits", epochs=2),
                    sample={"k": Sample("uniform", (0.1, 0.9)),
                            "init": choice(["kaiming_normal", "signed_constant"]),
                            "batch_size": randint(16, 129)})
    p = expand("t", [Phase("main", [series])], "smoke", [0], num_samples=6)
    settings = TuneSettings(search=search, search_options={"seed": 0}).validate()
    searcher = settings.make_searcher()
    assert searcher.set_search_properties("val_acc", "max",
                                          sampled_space(p.sampled[0], "t", "smoke"))
    points = [searcher.suggest(f"t{i}") for i in range(6)]
    for i, pt in enumerate(points):
        searcher.on_trial_complete(f"t{i}", {"val_acc": pt["k"]})
        assert 0.1 <= pt["k"] <= 0.9 and pt["init"] in ("kaiming_normal", "signed_constant")
        assert 16 <= pt["batch_size"] < 129
    assert len({pt["k"] for pt in points}) == 6


# --- Tune settings -------------------------------------------------------------------------------
def test_tune_settings_from_a_file_block_and_flags():
    s = TuneSettings.from_mapping({
        "num_samples": 4, "search": {"name": "optuna", "seed": 3},
        "scheduler": {"asha": {"grace_period": 2, "reduction_factor": 3}},
        "metric": "val_loss", "callbacks": ["csv", {"mlflow": {"tracking_uri": "file:/x"}}]})
    s.validate()
    assert (s.search, s.search_options, s.resolved_mode) == ("optuna", {"seed": 3}, "min")
    asha = s.make_scheduler(max_t=7)
    assert (asha._max_t, asha._reduction_factor, asha._metric) == (7, 3, None)
    flags = s.merged(scheduler="median", num_samples=2, callbacks=["tensorboard"])
    assert flags.scheduler_options == {} and flags.num_samples == 2
    assert flags.callbacks == ["csv", "mlflow", "tensorboard"]
    pbt = s.merged(scheduler="pbt").make_scheduler(5, {"lr": loguniform(1e-3, 1).tune()})
    assert set(pbt._hyperparam_mutations) == {"lr"}
    with pytest.raises(ConfigError, match="pbt mutates the sampled fields among lr"):
        s.merged(scheduler="pbt").make_scheduler(5, {"K": choice([2, 4]).tune()})


def test_asha_grace_beyond_the_trials_epochs_is_refused(tmp_path):
    path = write(tmp_path, """
        series: [{label: a, fixed: {method: dense}}]
        tune: {scheduler: {name: asha, grace_period: 5}}
        """)
    with pytest.raises(ConfigError) as e:
        plan(str(path), storage=str(tmp_path))
    assert e.value.field == "scheduler" and "grace_period" in str(e.value)


# --- study plan ----------------------------------------------------------------------------------
def test_plan_lists_trials_counts_and_an_estimate(capsys, tmp_path):
    assert main(["study", "plan", "ep-fig3", "--scale", "paper", "--no-calibrate",
                 "--storage", str(tmp_path), "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert "phase main: 240 trials" in out and "total: 240 trials" in out
    assert out.count("edgepopup-conv2-") == 50 and "estimate: 24000 trial-epochs" in out
    assert not (tmp_path / "ep-fig3").exists()


def test_plan_of_a_sampled_study_counts_samples_and_measures_here(capsys, tmp_path):
    assert main(["study", "plan", str(EXAMPLES / "asha-slot-ps-lr.yaml"), "--scale", "smoke",
                 "--storage", str(tmp_path), "--num-samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 point(s) x 3 = 6 trials" in out and "total: 6 trials" in out
    assert "lr ~ loguniform(1, 300)" in out and "grid K in [2, 8]" in out
    assert "estimate: 24 trial-epochs at most" in out and "measured here" in out


def test_python_api_study_plans_like_a_file():
    study = Study("api", phases=[Phase("main", [
        Series("ep", dict(method="edgepopup", model="fc", dataset="digits", epochs=2),
               axes={"width_mult": [0.5, 1.0]}, derive=lambda p: {"k": 0.25 / p["width_mult"]})
    ])], seeds=[0, 1, 2])
    p = plan(study, scale="paper")
    assert len(p) == 6 and sorted({t.cfg.k for t in p.trials}) == [0.25, 0.5]


def test_the_readme_python_example_plans_what_it_says(capsys):
    readme = (EXAMPLES.parent / "README.md").read_text()
    block = readme.split("### Python API\n\n```python\n", 1)[1].split("```", 1)[0]
    code = "\n".join(ln for ln in block.splitlines()
                     if not ln.startswith(("summary =", "print(summary")))
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.split()[0] == "28"


def test_pbt_checkpoint_takes_the_mutated_optimiser_fields():
    """A PBT trial continues from another trial's checkpoint with a mutated lr/momentum/decay:
    the loaded optimiser and schedule must train with the new values, at the same position."""
    from hiddenlab.config import TrialConfig
    from hiddenlab.study.reporter import adapt_state
    from hiddenlab.study.trainer import Trial

    base = dict(method="dense", model="fc", dataset="digits", subset=64, epochs=4,
                num_workers=0, width_mult=0.25, schedule="cosine", lr=0.1, momentum=0.9)
    donor_cfg = TrialConfig(**base)
    donor = Trial(donor_cfg, __import__("torch").device("cpu"))
    donor.train_epoch(1, False)
    state = {"config": donor_cfg.to_dict(), "optimizer": donor.optimizer.state_dict(),
             "scheduler": donor.scheduler.state_dict()}
    factor = donor.optimizer.param_groups[0]["lr"] / 0.1          # where the cosine is
    mutated = TrialConfig(**{**base, "lr": 0.25, "momentum": 0.5, "weight_decay": 0.0})
    adapted = adapt_state(state, mutated)
    trial = Trial(mutated, __import__("torch").device("cpu"))
    trial.optimizer.load_state_dict(adapted["optimizer"])
    trial.scheduler.load_state_dict(adapted["scheduler"])
    group = trial.optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(0.25 * factor) and group["momentum"] == 0.5
    assert group["weight_decay"] == 0.0 and trial.scheduler.base_lrs == [0.25]
    trial.scheduler.step()
    assert trial.optimizer.param_groups[0]["lr"] < 0.25 * factor    # the cosine goes on
    assert adapt_state(adapted, mutated) is adapted                   # nothing to change


def test_show_all_lists_the_trials_not_started(capsys, tmp_path):
    assert main(["study", "show", "ep-fig3", "--scale", "paper", "--all",
                 "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0/240 complete" in out and out.count("NOT STARTED") == 241   # summary + 240 rows
    assert out.count("edgepopup-conv6-") == 50

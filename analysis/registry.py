"""Figure and table ids -> functions, the studies each needs, and the skipping rule.

Skipping rule: a figure is built only when every study it needs has at least one finished trial;
otherwise it is skipped and the missing studies are named (never drawn from whatever part exists).
Within a built figure, points with fewer seeds are drawn with their n shown, and trials of its
studies that did not finish are counted in its notes (those a scheduler stopped early apart).
Each study is first reduced to one scale (smoke or paper: `results.one_scale`), and a point that
pools several configurations is flagged. `quickstart` and `real-data` are hiddenlab's own ids
beside the papers' ones; every other study in the results (a user's own, any name) gets the
generic figure `study:<name>` (`figures/generic.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from .core import FigureResult, NoData, dataset_label
from .figures import dynamics, edgepopup, generic, overview, scaling, slots
from .results import final_results, one_scale, trial_table


@dataclass(frozen=True)
class Spec:
    id: str
    func: Callable
    studies: tuple[str, ...] | None  # needed studies; () none (computed); None: any study
    kind: str  # "figure" | "table"
    title: str
    needs_selections: bool = False
    # The data sets the figure is about: trials on others are noted (None: any data set).
    data: tuple[str, ...] | None = None
    # What the figure does with trials a scheduler stopped early.
    stopped_use: str = "left out"


PAPER_DATA = ("mnist", "cifar10", "cifar100", "imagenet")
_P = dict(data=PAPER_DATA)

FIGURES: dict[str, Spec] = {s.id: s for s in [
    Spec("quickstart", overview.quickstart, ("quickstart",), "figure", "Quickstart overview"),
    Spec("real-data", overview.real_data, ("real-data",), "figure",
         "Every method on real data (Fashion-MNIST)", data=("fashion-mnist",)),
    Spec("ep-table1", edgepopup.table1, (), "table", "edge-popup Table 1: architectures"),
    Spec("ep-fig3", edgepopup.fig3, ("ep-fig3",), "figure", "Going deeper", **_P),
    Spec("ep-fig4", edgepopup.fig4, ("ep-fig4",), "figure", "Going wider", **_P),
    Spec("ep-fig5", edgepopup.fig5, ("ep-fig5",), "figure", "Fixed sub-network size", **_P),
    Spec("ep-fig6", edgepopup.fig6, ("ep-fig6",), "figure", "edge-popup vs Zhou et al.", **_P),
    Spec("ep-fig7", edgepopup.fig7, ("ep-fig7",), "figure", "Weight distribution", **_P),
    Spec("ep-fig8", edgepopup.fig8, ("ep-fig8",), "figure", "ImageNet size vs accuracy", **_P),
    Spec("ep-fig9", edgepopup.fig9, ("ep-fig9",), "figure", "ImageNet % of weights", **_P),
    Spec("ep-fig10", edgepopup.fig10, ("ep-fig10",), "figure", "ImageNet scaled init", **_P),
    Spec("ep-table2", edgepopup.table2, ("ep-fig8",), "table", "edge-popup Table 2: ImageNet", **_P),
    Spec("sm-setup", slots.setup_table, (), "table", "Slot Machines setup table"),
    Spec("sm-k", slots.sm_k, ("sm-k",), "figure", "Slot Machines vs traditional training", **_P),
    Spec("sm-gs-ps", slots.sm_gs_ps, ("sm-gs-ps",), "figure", "GS vs PS", **_P),
    Spec("sm-finetune", slots.sm_finetune, ("sm-finetune",), "figure", "Equal-budget finetuning", **_P),
    Spec("sm-related", slots.sm_related, ("sm-related",), "table", "Related works", **_P),
    Spec("scaling-laws", scaling.scaling_laws, ("scaling-laws",), "figure", "Scaling laws",
         data=("cifar10",)),
    Spec("flip-rate", dynamics.flip_rate, None, "figure", "Selection dynamics"),
    Spec("selected-weights", dynamics.selected_weights, None, "figure",
         "Selected vs unselected weights", needs_selections=True),
]}


@dataclass
class Skipped:
    id: str
    reason: str
    missing: tuple[str, ...] = ()


def missing_studies(spec: Spec, trials: pd.DataFrame, selected=None) -> tuple[list[str], str]:
    """(missing study names, reason) for `spec` given the trial table of the loaded frame."""
    if not spec.studies:
        return [], ""
    missing, why = [], []
    for s in spec.studies:
        t = trials[trials["study"] == s] if not trials.empty else trials
        if selected and s not in selected:
            missing.append(s)
            why.append(f"{s} (not selected with --study)")
        elif t.empty:
            missing.append(s)
            why.append(f"{s} (no results)")
        elif not t["finished"].any():
            missing.append(s)
            counts = t["status"].value_counts()
            why.append(f"{s} (no finished trials: " +
                       ", ".join(f"{n} {st}" for st, n in counts.items()) + ")")
    return missing, ("missing studies: " + "; ".join(why)) if why else ""


def unfinished_note(spec: Spec, trials: pd.DataFrame) -> list[str]:
    """'3 of 40 trials of ep-fig3 not finished (2 ERROR, 1 RUNNING): left out', and apart from
    those the trials a scheduler stopped early ('3 trials stopped early by the scheduler')."""
    if not spec.studies or trials.empty:
        return []
    t = trials[trials["study"].isin(spec.studies)]
    bad = t[~t["finished"]]
    stopped = bad[bad["status"] == "STOPPED"]
    bad = bad[bad["status"] != "STOPPED"]
    notes = []
    if len(bad):
        counts = bad["status"].value_counts()
        notes.append(f"{len(bad)} of {len(t)} trials of {', '.join(spec.studies)} not finished ("
                     + ", ".join(f"{n} {st}" for st, n in counts.items()) + "): left out")
    if len(stopped):
        reached = pd.to_numeric(stopped["epoch"], errors="coerce").dropna().astype(int)
        at = "" if reached.empty else (f" at epoch {reached.min()}" if reached.nunique() == 1
                                       else f" at epochs {reached.min()}–{reached.max()}")
        notes.append(f"{len(stopped)} trials stopped early by the scheduler{at}: not finished, "
                     f"{spec.stopped_use}")
    return notes


def partial_note(result: FigureResult) -> str | None:
    d = result.data
    if d is None or d.empty or "n" not in d.columns:
        return None
    n = pd.to_numeric(d["n"], errors="coerce")
    if n.isna().all():
        return None
    short = d[n < n.max()]
    if short.empty:
        return None
    return (f"{len(short)} of {len(d)} plotted points have fewer than {int(n.max())} seeds "
            f"(n = {', '.join(str(int(v)) for v in sorted(set(n[n < n.max()])))}; shown on the plot)")


def pooled_note(result: FigureResult) -> str | None:
    d = result.data
    if d is None or d.empty or "configs" not in d.columns:
        return None
    many = d[pd.to_numeric(d["configs"], errors="coerce") > 1]
    if many.empty:
        return None
    return (f"{len(many)} plotted points pool trials of more than one configuration (see the "
            "`configs` column of the CSV): the study varies something this figure does not show")


def data_note(spec: Spec, df: pd.DataFrame) -> str | None:
    """Smoke-scale studies train on stand-in data (synthetic, digits): say so wherever the
    figure is about another data set, so nobody compares its numbers with the paper's."""
    if spec.data is None or not spec.studies:
        return None
    used = sorted(set(df.loc[df["study"].isin(spec.studies), "dataset"].dropna()))
    stand_ins = [d for d in used if d not in spec.data]
    if not stand_ins:
        return None
    meant = "the paper's data set" if spec.data == PAPER_DATA else \
        " / ".join(dataset_label(d) for d in spec.data)
    return (f"trained on {', '.join(stand_ins)} (stand-in data), not {meant}: compare trends, "
            "not numbers")


def claimed_studies() -> set[str]:
    """Studies a paper figure (or hiddenlab's own figure) is drawn from."""
    return {s for spec in FIGURES.values() for s in (spec.studies or ())}


def spec_of(fig_id: str) -> Spec:
    """The spec of a registered id, or of the generic figure `study:<name>` of any study."""
    if fig_id in FIGURES:
        return FIGURES[fig_id]
    study = generic.study_of(fig_id)
    if not study:
        raise KeyError(fig_id)
    return Spec(fig_id, functools.partial(generic.study_figure, study=study), (study,),
                "figure", generic.study_title(study),
                stopped_use="in the validation panels and the best-trials table only")


def known_id(fig_id: str) -> bool:
    return fig_id in FIGURES or bool(generic.study_of(fig_id))


def default_ids(df: pd.DataFrame, selected=None) -> list[str]:
    """Every registered id, then `study:<name>` for each study of `df` no figure claims (only
    the selected ones when studies were selected)."""
    studies = generic.generic_studies(df, claimed_studies())
    if selected:
        studies = [s for s in studies if s in selected]
    return list(FIGURES) + [generic.figure_id(s) for s in studies]


def build(fig_id: str, df: pd.DataFrame, selections: dict | None = None, selected=None,
          trials: pd.DataFrame | None = None, scale: str | None = None,
          scale_notes: dict | None = None):
    """Build one id: a FigureResult, or Skipped naming why. Each study is reduced to one scale
    first (`one_scale`): what was left out is noted on the figure."""
    spec = spec_of(fig_id)
    if scale_notes is None:
        df, scale_notes = one_scale(df, scale)
    trials = trial_table(df) if trials is None else trials
    missing, reason = missing_studies(spec, trials, selected)
    if missing:
        return Skipped(fig_id, reason, tuple(missing))
    try:
        result = spec.func(df, selections or {}) if spec.needs_selections else spec.func(df)
    except NoData as e:
        return Skipped(fig_id, str(e))
    studies = spec.studies if spec.studies is not None else sorted(scale_notes)
    for note in [scale_notes[s] for s in studies if s in scale_notes] + \
            unfinished_note(spec, trials) + \
            [partial_note(result), pooled_note(result), data_note(spec, df)]:
        if note:
            result.notes.append(note)
    result.title = result.title or spec.title
    return result


def build_all(df: pd.DataFrame, selections: dict | None = None, ids=None, selected=None,
              scale: str | None = None):
    """Build every id (or `ids`; default `default_ids`: the registered ones and the generic
    figure of every study no figure claims): {id: FigureResult | Skipped}."""
    df, notes = one_scale(df, scale)
    trials = trial_table(df)
    final_results(df)  # fail early on a malformed frame, before any figure is drawn
    return {i: build(i, df, selections, selected, trials, scale_notes=notes)
            for i in (ids or default_ids(df, selected))}

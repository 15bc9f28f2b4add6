"""One schema for the columns of records, summaries and the leaderboard: name, readable title, formula,
direction (higher or lower is better) and group.

The pages read it for their headers (the title is the header, the formula its hover text) and for
which end of a column is the best; the runner and the measures can name their columns from it too.
Formulas use the notation of ``docs/measures.md``: ``s, s', s_D, s'_D`` the clean, attacked,
defended-clean and defended-attacked scores, ``m`` the MOS, ``r`` the metric's score range, ``x, x'`` the
clean and attacked images, ``D`` the defense and ``A(x)`` the clean image brought into the defense's
output geometry (the ``_aligned`` columns).

    >>> from benchmark.schema import column
    >>> column("robust_abs_gain").better
    'lower'
    >>> column("srocc_def_clean").title
    'SROCC(m, s_D)'

Columns the schema does not know get a plain entry (their name as title, no direction), so a new
measure shows up everywhere before it is described here.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Literal

Better = Literal["higher", "lower"]
Kind = Literal["record", "summary", "leaderboard"]

# Display order of the groups, with the heading shown above their columns.
GROUPS = {
    "cell": "Cell",
    "attack": "Attack alone (no defense)",
    "defense": "Through the defense",
    "quality": "Cost in image quality",
    "correlation": "Agreement with MOS",
    "certificate": "Certificate",
    "cost": "Cost in time",
    "ranking": "Ranking",
    "image": "Per image",
    "other": "Other",
}

MEASURES_DOC = "docs/measures.md"


@dataclass(frozen=True)
class Column:
    name: str
    title: str                 # short header
    formula: str = ""          # hover text: how it is computed
    better: Better | None = None
    group: str = "other"
    kind: Kind = "summary"

    @property
    def hover(self) -> str:
        """The header's title attribute: the formula and which end is better."""
        arrow = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(self.better or "", "")
        return f"{self.name} = {self.formula}{arrow}" if self.formula else self.name

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓"}.get(self.better or "", "")


def _c(name: str, title: str, formula: str = "", better: Better | None = None, group: str = "other",
       kind: Kind = "summary") -> Column:
    return Column(name, title, formula, better, group, kind)


_BASE: list[Column] = [
    # -- identity of a cell ------------------------------------------------------------------------
    _c("dataset", "dataset", "dataset label (plugin and parameters)", group="cell"),
    _c("metric", "metric", "IQA metric label (plugin and parameters)", group="cell"),
    _c("attack", "attack", "attack label (plugin and parameters; +adaptive: attacks metric ∘ defense)", group="cell"),
    _c("defense", "defense", "defense label (plugin and parameters)", group="cell"),
    _c("n_images", "n", "images in the cell", group="cell"),
    _c("adaptive_attack", "adaptive", "the attack saw the defense (EOT/BPDA through metric ∘ defense)", group="cell"),
    _c("eot_samples", "EOT K", "draws of a stochastic defense averaged per gradient (0: not adaptive)", group="cell"),
    _c("defense_baseline", "baseline", "the defense declares itself the undefended reference (never ranked)",
       group="cell"),
    # -- what the attack does without defense -----------------------------------------------------
    _c("abs_gain", "abs. gain", "mean |s − s'| / r", "lower", "attack"),
    _c("rel_gain", "rel. gain", "mean |s − s'| / (|s| + 1e-6)", "lower", "attack"),
    _c("msu_abs_gain", "MSU gain", "mean sign·(ŝ' − ŝ), ŝ min–max scaled on the clean scores; "
       "95 % Student-t interval in _lo/_hi", "lower", "attack"),
    _c("msu_rel_gain", "MSU rel. gain", "mean sign·(ŝ' − ŝ)/(ŝ + 1)", "lower", "attack"),
    _c("robustness_R", "R", "Zhang et al.: mean log10(max(hi − s, s − lo) / |s' − s|)", "higher", "attack"),
    _c("wasserstein_score", "W1 shift", "sgn(mean ŝ' − mean ŝ)·W1(ŝ, ŝ')", "lower", "attack"),
    _c("energy_score", "energy shift", "sgn(mean ŝ' − mean ŝ)·E(ŝ, ŝ')", "lower", "attack"),
    _c("signed_gain", "signed gain", "mean sign·(s' − s) / r (in the quality direction)", "lower", "attack"),
    _c("psnr_attack", "PSNR(x, x')", "mean PSNR of the attacked image against the clean one (dB)", None, "attack"),
    _c("ssim_attack", "SSIM(x, x')", "mean SSIM of the attacked image against the clean one", None, "attack"),
    _c("ms_ssim_attack", "MS-SSIM(x, x')", "mean MS-SSIM of the attacked image against the clean one", None,
       "attack"),
    _c("lpips_attack", "LPIPS(x, x')", "mean LPIPS distance of the attacked image", None, "attack"),
    _c("dists_attack", "DISTS(x, x')", "mean DISTS distance of the attacked image", None, "attack"),
    _c("linf_attack", "L∞(x' − x)", "mean max |x' − x| (pixel values in [0, 1])", None, "attack"),
    _c("l2_attack", "L2(x' − x)", "mean ‖x' − x‖₂", None, "attack"),
    # -- what is left through the defense ---------------------------------------------------------
    _c("robust_abs_gain", "robust gain", "mean |s − s'_D| / r (0: the defense restores the clean score)",
       "lower", "defense"),
    _c("robust_rel_gain", "robust rel. gain", "mean |s − s'_D| / (|s| + 1e-6)", "lower", "defense"),
    _c("both_defended_abs_gain", "both-defended gain", "mean |s_D − s'_D| / r (does the attack still move "
       "the defended score?)", "lower", "defense"),
    _c("robust_signed_gain", "robust signed gain", "mean sign·(s'_D − s) / r", "lower", "defense"),
    # -- what the defense costs in image quality --------------------------------------------------
    _c("psnr_def_adv", "PSNR(x, D(x'))", "mean PSNR of the purified attacked image against the clean one (dB)",
       "higher", "quality"),
    _c("ssim_def_adv", "SSIM(x, D(x'))", "mean SSIM of the purified attacked image against the clean one",
       "higher", "quality"),
    _c("ms_ssim_def_adv", "MS-SSIM(x, D(x'))", "mean MS-SSIM of D(x') against x", "higher", "quality"),
    _c("lpips_def_adv", "LPIPS(x, D(x'))", "mean LPIPS distance of D(x') to x", "lower", "quality"),
    _c("dists_def_adv", "DISTS(x, D(x'))", "mean DISTS distance of D(x') to x", "lower", "quality"),
    _c("psnr_def_clean", "PSNR(x, D(x))", "mean PSNR of the purified clean image against the clean one (dB)",
       "higher", "quality"),
    _c("ssim_def_clean", "SSIM(x, D(x))", "mean SSIM of D(x) against x", "higher", "quality"),
    _c("ms_ssim_def_clean", "MS-SSIM(x, D(x))", "mean MS-SSIM of D(x) against x", "higher", "quality"),
    _c("lpips_def_clean", "LPIPS(x, D(x))", "mean LPIPS distance of D(x) to x", "lower", "quality"),
    _c("dists_def_clean", "DISTS(x, D(x))", "mean DISTS distance of D(x) to x", "lower", "quality"),
    _c("similarity", "similarity", "Guardians: mean [SSIM(x, D(x')) + PSNR(x, D(x'))/40]", "higher", "quality"),
    _c("purified_quality", "purified quality", "purification paper: mean ½[SSIM(x, D(x')) + PSNR(x, D(x'))/80]",
       "higher", "quality"),
    # -- agreement with subjective scores ---------------------------------------------------------
    _c("srocc_s_sdef", "SROCC(s, s_D)", "Spearman ρ between clean and defended-clean scores", "higher",
       "correlation"),
    _c("plcc_mapping", "PLCC mapping", "monotonic mapping fitted before PLCC (logistic4: VQEG)", None, "correlation"),
    # -- certificates -----------------------------------------------------------------------------
    _c("cert_width", "certified width", "mean y_(q_u) − y_(q_l) over non-abstained images (score units)",
       "lower", "certificate"),
    _c("cert_delta", "cert. δ", "mean max(y_(q_u) − median, median − y_(q_l))", "lower", "certificate"),
    _c("cert_delta_norm", "cert. δ / r", "mean certified delta / r", "lower", "certificate"),
    _c("cert_radius", "cert. radius", "mean certified L2 radius (Cohen: σ Φ⁻¹(p̲_A))", "higher", "certificate"),
    _c("abstain_rate", "abstain", "share of images without a certificate", "lower", "certificate"),
    _c("adv_within_cert", "s'_D in interval", "share of images whose attacked smoothed score lies inside the "
       "clean image's certified interval", "higher", "certificate"),
    # -- time ------------------------------------------------------------------------------------
    _c("seconds_def_adv", "defense s/img", "wall time of D per attacked image (s)", "lower", "cost"),
    _c("seconds_def_clean", "defense s/img (clean)", "wall time of D per clean image (s)", "lower", "cost"),
    # -- leaderboard and ranking ------------------------------------------------------------------
    _c("rank", "rank", "order within (dataset, metric): Pareto front, then distance to the ideal "
       "(docs/leaderboard.md); baselines are not ranked", "lower", "ranking", "leaderboard"),
    _c("front", "front", "Pareto front over (worst robust gain ↓, purified quality ↑, SROCC(m, s_D) ↑): 1 = "
       "no other defense is at least as good on every criterion and better on one", "lower", "ranking",
       "leaderboard"),
    _c("distance", "distance to ideal", "√(mean_k (1 − u_k)²), u_k each criterion min–max scaled over the "
       "ranked defenses (1 = best); orders defenses within a front", "lower", "ranking", "leaderboard"),
    _c("worst_robust_gain", "worst robust gain", "max over the attacks met of mean |s − s'_D| / r", "lower",
       "defense", "leaderboard"),
    _c("worst_attack", "worst attack", "the attack with the largest robust gain (the strongest met)", None,
       "defense", "leaderboard"),
    _c("both_defended_gain", "both-defended gain", "mean |s_D − s'_D| / r under the worst attack", "lower",
       "defense", "leaderboard"),
    _c("removed", "gain removed", "1 − worst robust gain / abs. gain of the same attack: the share of the "
       "attack's score shift the defense takes back (1: all, 0: none, < 0: it adds to it)", "higher", "defense",
       "leaderboard"),
    _c("attacked_quality", "quality of x'", "½[SSIM(x, x') + PSNR(x, x')/80]: the purified-quality formula applied "
       "to the attacked image itself (what no defense leaves)", None, "quality", "leaderboard"),
    _c("quality", "purified quality (ranked)", "purified_quality_aligned when the run has it, else "
       "purified_quality, under the worst attack", "higher", "quality", "leaderboard"),
    _c("damages", "damages more than the attack", "PSNR(x, D(x')) < PSNR(x, x') under the worst attack "
       "(aligned PSNR when available): the purified image is further from x than the attacked one", None,
       "quality", "leaderboard"),
    _c("n_attacks", "attacks", "attacks met in any run", None, "cell", "leaderboard"),
    _c("adaptive", "adaptive attack met", "at least one attack saw the defense (EOT/BPDA)", None, "cell",
       "leaderboard"),
    _c("runs", "runs", "runs the row is merged from", None, "cell", "leaderboard"),
    # -- per-image records ------------------------------------------------------------------------
    _c("image_id", "image", "image identifier within the dataset", None, "image", "record"),
    _c("mos", "MOS", "subjective score m", None, "image", "record"),
    _c("score", "s", "f(x): the metric's score of the clean image", None, "image", "record"),
    _c("score_adv", "s'", "f(x'): score of the attacked image", None, "image", "record"),
    _c("score_def", "s_D", "f(D(x)): score of the purified clean image", None, "image", "record"),
    _c("score_adv_def", "s'_D", "f(D(x')): score of the purified attacked image", None, "image", "record"),
    _c("budget", "budget", "the attack's perturbation budget (eps; amplitude for UAP; RMSE radius for MADC)",
       None, "image", "record"),
    _c("threat_model", "threat model", "linf, l2, universal, ...", None, "image", "record"),
]

# Correlations with MOS for each score: s, s', s_D, s'_D (oriented to quality, formulas.md §4).
_SCORES = {"clean": "s", "adv": "s'", "def_clean": "s_D", "def_adv": "s'_D"}
_CORR = {"srocc": ("SROCC", "Spearman ρ", "higher"), "krocc": ("KROCC", "Kendall τ", "higher"),
         "plcc": ("PLCC", "Pearson r after the 4-parameter logistic (VQEG)", "higher"),
         "plcc_raw": ("PLCC raw", "Pearson r without mapping", "higher"),
         "rmse": ("RMSE", "root mean squared error after the logistic mapping", "lower")}
for _tag, _sym in _SCORES.items():
    for _k, (_t, _f, _b) in _CORR.items():
        _BASE.append(_c(f"{_k}_{_tag}", f"{_t}(m, {_sym})", f"{_f} of MOS m with {_sym}, both oriented to quality",
                        _b, "correlation"))
    _BASE.append(_c(f"plcc_mapping_failed_{_tag}", f"PLCC fit failed ({_sym})", "the logistic fit did not "
                    "converge: PLCC is the raw value", None, "correlation"))

COLUMNS: dict[str, Column] = {c.name: c for c in _BASE}


def _aligned(base: Column, name: str) -> Column:
    title = base.title.replace("(x,", "(A(x),") if "(x," in base.title else f"{base.title} (aligned)"
    return replace(base, name=name, title=title,
                   formula=base.formula.replace("against the clean one", "against A(x)")
                   .replace("(x, ", "(A(x), ") + "; A(x) = the clean image in the defense's output geometry")


def _interval(base: Column, name: str, end: str) -> Column:
    return replace(base, name=name, title=f"{base.title} {end}", better=None,
                   formula=f"{'lower' if end == 'lo' else 'upper'} end of the 95 % interval of {base.name}")


@functools.cache
def column(name: str) -> Column:
    """The schema entry of ``name``; derived for ``*_aligned`` and ``*_lo``/``*_hi`` columns, plain for the unknown."""
    if name in COLUMNS:
        return COLUMNS[name]
    for end in ("lo", "hi"):
        base = name[: -len(end) - 1]
        if name.endswith(f"_{end}") and base in COLUMNS:
            return _interval(COLUMNS[base], name, end)
    if name.endswith("_aligned") and name[: -len("_aligned")] in COLUMNS:
        return _aligned(COLUMNS[name[: -len("_aligned")]], name)
    return Column(name, name)


def titles(names: list[str]) -> list[str]:
    return [column(n).title for n in names]


__all__ = ["COLUMNS", "GROUPS", "MEASURES_DOC", "Column", "column", "titles"]

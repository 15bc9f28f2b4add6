"""One schema for the columns of records, summaries and the leaderboard: name, readable title, formula,
direction (higher or lower is better), group and kind.

Every column that :func:`benchmark.records.load_records` (``records.csv``, one row per image) and
:func:`benchmark.measures.summarize` (``summary.csv``, one row per cell) can produce is listed here, and
``tests/measures/test_schema.py`` checks it on a real run and against ``docs/measures.md``, whose notation the
formulas use: ``s, s', s_D, s'_D`` the clean, attacked, defended-clean and defended-attacked scores, ``m``
the MOS, ``[lo, hi]`` the metric's declared range and ``r = |hi − lo|``, ``sign`` −1 for a lower-is-better
metric, ``ŝ, ŝ'`` the scores min–max scaled on the cell's clean scores, ``x, x'`` the clean and attacked
images, ``D`` the defense and ``A(x)`` the clean image in the defense's output geometry.

``kind`` says where a column is defined: ``record`` (per image only), ``summary`` (per cell) or
``leaderboard``. ``per_image`` marks a summary column that ``records.csv`` holds per image as well: a
cell's constant (its labels, flags) or, in the groups ``measures.MEAN_GROUPS`` averages, the per-image
value whose cell mean the summary column is (its formula's "mean" is over the cell's images).

    >>> from benchmark.schema import column
    >>> column("robust_abs_gain").better
    'lower'
    >>> column("srocc_def_clean").title
    'SROCC(m, s_D)'

The pages read titles (headers), formulas (hover text) and directions (best and worst marks); records.py
and the tables read their leading columns. A column the schema does not know gets a plain entry (its
name as title, no direction), so a new measure shows up everywhere before it is described here.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
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
CELL = ("dataset", "metric", "attack", "defense")   # a cell's key: the first columns of both tables


@dataclass(frozen=True)
class Column:
    name: str
    title: str                 # short header
    formula: str = ""          # hover text: how it is computed
    better: Better | None = None
    group: str = "other"
    kind: Kind = "summary"
    per_image: bool = False    # a summary column that records.csv also holds per image

    @property
    def in_records(self) -> bool:
        return self.kind == "record" or self.per_image

    @property
    def hover(self) -> str:
        """The header's title attribute: the formula and which end is better."""
        arrow = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(self.better or "", "")
        return f"{self.name} = {self.formula}{arrow}" if self.formula else self.name

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓"}.get(self.better or "", "")


_BASE: list[Column] = []


def _c(name: str, title: str, formula: str = "", better: Better | None = None, group: str = "other",
       kind: Kind = "summary", per_image: bool = False) -> None:
    _BASE.append(Column(name, title, formula, better, group, kind, per_image))


def _t_interval() -> None:
    """``_lo``/``_hi`` of the column just defined (an MSU measure): its 95 % Student-t interval over the images."""
    base = _BASE[-1]
    for end, word in (("lo", "lower"), ("hi", "upper")):
        _c(f"{base.name}_{end}", f"{base.title} {end}", f"{word} end of the 95 % Student-t interval of {base.name}: "
           "t.interval(0.95, n − 1, mean, sem) over the images", None, base.group)


# -- a cell: its labels and what the stages recorded about its plugins -----------------------------
for _n, _f in zip(CELL, ("dataset label (plugin and parameters)", "IQA metric label (plugin and parameters)",
                         "attack label (plugin and parameters; +adaptive: attacks metric ∘ defense)",
                         "defense label (plugin and parameters)")):
    _c(_n, _n, _f, group="cell", per_image=True)
_c("n_images", "n", "images in the cell", group="cell")
_c("adaptive_attack", "adaptive", "the attack saw the defense (EOT/BPDA through metric ∘ defense)", group="cell",
   per_image=True)
_c("eot_samples", "EOT K", "draws of a stochastic defense averaged per gradient (0: not adaptive)", group="cell",
   per_image=True)
_c("defense_baseline", "baseline", "the defense declares itself the undefended reference (baseline = True: "
   "identity); never ranked", group="cell", per_image=True)
_c("lower_better", "metric lower better", "the metric's direction (sign = −1): lower scores mean better quality "
   "(NIQE, DMOS-trained CNNIQA)", group="cell", kind="record")
_c("range_lo", "lo", "lower end of the metric's declared score range [lo, hi]", group="cell", kind="record")
_c("range_hi", "hi", "upper end of the metric's declared score range [lo, hi]; r = |hi − lo|", group="cell",
   kind="record")
_c("budget", "budget", "the attack's perturbation budget (eps; amplitude for UAP; RMSE radius for MADC)",
   group="cell", per_image=True)
_c("threat_model", "threat model", "linf, l2, universal, ...", group="cell", per_image=True)
_c("budget_unit", "budget unit", "the unit of budget: linf, l2, rmse, l0_pixels, patch_area, colour_filter, flow, "
   "perceptual (benchmark.attacks.base.BUDGET_UNITS)", group="cell", kind="record")
_c("defense_stochastic", "stochastic", "the defense draws random numbers (D(x) and D(x') get the same seed)",
   group="cell", kind="record")
_c("defense_changes_geometry", "moves pixels", "the defense moves pixels (changes_geometry: flip, crop, "
   "rotation): its _aligned columns compare with A(x); otherwise they copy the unaligned values",
   group="cell", kind="record")

# -- per image: the four scores and the subjective one ----------------------------------------------
_c("image_id", "image", "image identifier within the dataset", group="image", kind="record")
_c("mos", "MOS", "subjective score m (MOS or DMOS)", group="image", kind="record")
_c("score", "s", "f(x): the metric's score of the clean image", group="image", kind="record")
_c("score_adv", "s'", "f(x'): score of the attacked image", group="image", kind="record")
_c("score_def", "s_D", "f(D(x)): score of the purified clean image", group="image", kind="record")
_c("score_adv_def", "s'_D", "f(D(x')): score of the purified attacked image", group="image", kind="record")

# -- what the attack does without defense (docs/measures.md#attack-strength) -------------------------------------------
_c("abs_gain", "abs. gain", "mean |s − s'| / r", "lower", "attack")
_c("rel_gain", "rel. gain", "mean |s − s'| / (|s| + 1e-6)", "lower", "attack")
_c("msu_abs_gain", "MSU gain", "mean sign · (ŝ' − ŝ), ŝ min–max scaled on the clean scores (MSU "
   "normalized_absolute_gain)", "lower", "attack")
_t_interval()
_c("msu_rel_gain", "MSU rel. gain", "mean sign · (ŝ' − ŝ) / (ŝ + 1) (MSU normalized_relative_gain)", "lower",
   "attack")
_t_interval()
_c("robustness_R", "R", "MSU robustness score: mean log10(max(1 − ŝ, ŝ − 0) / (|ŝ' − ŝ| + 1e-6)), ŝ min–max "
   "scaled on the clean scores (Zhang et al. with β1 = 1, β2 = 0)", "higher", "attack")
_t_interval()
_c("robustness_R_range", "R (range)", "Zhang et al.'s original on the declared range: mean log10(max(hi − s, "
   "s − lo) / (|s' − s| + 1e-6 · r))", "higher", "attack")
_c("wasserstein_score", "W1 shift", "sign · sgn(mean ŝ' − mean ŝ) · W1(ŝ, ŝ') (MSU calc_wasserstein_score)",
   "lower", "attack")
_c("energy_score", "energy shift", "sign · sgn(mean ŝ' − mean ŝ) · E(ŝ, ŝ') (MSU energy_distance_score)", "lower",
   "attack")
_c("signed_gain", "signed gain", "mean sign · (s' − s) / r: how far the attack pushed predicted quality up",
   "lower", "attack")

# Full-reference measures of an image pair (benchmark.quality.pair_quality): per image in the records, their
# cell means in the summary. The attacked pair is descriptive (imperceptibility); the purified ones are costs.
# PSNR/SSIM are the project's (pyiqa's convention); PSNR_sk/SSIM_sk are scikit-image's, which the published
# studies use and the columns named after them are made of (docs/measures.md, "Published conventions").
_FR = {"psnr": ("PSNR", " (dB, RGB; 80 dB for identical images, pyiqa's 1e-8 floor)", "higher"),
       "ssim": ("SSIM", " (pyiqa: Y channel, 11×11 Gaussian window)", "higher"),
       "ms_ssim": ("MS-SSIM", " (NaN below 176 px)", "higher"),
       "psnr_skimage": ("PSNR_sk", (" (dB, scikit-image peak_signal_noise_ratio, data_range 1: inf for identical "
                                    "images, so a mean with one is inf)"), "higher"),
       "ssim_skimage": ("SSIM_sk", (" (scikit-image structural_similarity on RGB, channel_axis 2, data_range 1: "
                                    "7×7 uniform window, sample covariance)"), "higher"),
       "lpips": ("LPIPS", " (distance; only with its weights)", "lower"),
       "dists": ("DISTS", " (distance; only with its weights)", "lower")}
_PAIRS = {"attack": ("x'", "attack"), "def_adv": ("D(x')", "quality"), "def_clean": ("D(x)", "quality")}


def _full_reference(tag: str, aligned: bool = False) -> None:
    img, group = _PAIRS[tag]
    ref = "A(x)" if aligned else "x"
    for key, (t, note, better) in _FR.items():
        if aligned:
            _c(f"{key}_{tag}_aligned", f"{t}(A(x), {img})", f"mean {t}(A(x), {img}){note}; A(x) = the clean image "
               "in the defense's output geometry (the unaligned value for a defense that moves no pixel)", better,
               group, kind="record")
        else:
            _c(f"{key}_{tag}", f"{t}({ref}, {img})", f"mean {t}({ref}, {img}){note}",
               better if group == "quality" else None, group, per_image=True)


_full_reference("attack")
_c("linf_attack", "L∞(x' − x)", "mean ‖x' − x‖∞ (pixel values in [0, 1]; x' as stored, 8-bit by default)", None,
   "attack", per_image=True)
_c("l2_attack", "L2(x' − x)", "mean ‖x' − x‖₂ (pixel values in [0, 1])", None, "attack", per_image=True)

# -- what is left through the defense (docs/measures.md#defense) -----------------------------------------------
_c("robust_abs_gain", "robust gain", "mean |s − s'_D| / r (0: the defense restores the clean score)", "lower",
   "defense")
_c("robust_rel_gain", "robust rel. gain", "mean |s − s'_D| / (|s| + 1e-6)", "lower", "defense")
_c("both_defended_abs_gain", "both-defended gain", "mean |s_D − s'_D| / r (does the attack still move the "
   "defended score?)", "lower", "defense")
_c("both_defended_rel_gain", "both-defended rel. gain", "mean |s_D − s'_D| / (|s_D| + 1e-6)", "lower", "defense")
_c("robust_signed_gain", "robust signed gain", "mean sign · (s'_D − s) / r", "lower", "defense")
# -- verdicts (docs/measures.md, "Verdicts"): what the attacker achieves through the defense, and its costs ----
_c("defended_gain", "g_D", "mean d · sign · (s'_D − s_D) / r: the attack's success through the defense in its "
   "direction d (+1: raise predicted quality), D(x) and D(x') with the same random draw; on identity, the "
   "attack's own gain", "lower", "defense")
_c("defense_bias", "bias", "mean |s_D − s| / r: the defense's own shift of clean scores (a cost, not robustness)",
   "lower", "quality")

# -- what the defense costs in image quality ---------------------------------------------------------
_full_reference("def_adv")
_full_reference("def_clean")
_full_reference("def_adv", aligned=True)
_full_reference("def_clean", aligned=True)
_SK = "SSIM_sk, PSNR_sk: scikit-image's RGB SSIM and PSNR, as the studies' code computes them; PSNR_sk is inf for "
_c("similarity", "similarity", "Guardians: mean [SSIM_sk(x, D(x')) + PSNR_sk(x, D(x'))/40]; " + _SK + "D(x') = x, "
   "which makes the mean inf", "higher", "quality")
_c("similarity_clean", "similarity (clean)", "Guardians: mean [SSIM_sk(x, D(x)) + PSNR_sk(x, D(x))/40]; " + _SK +
   "D(x) = x (identity: inf)", "higher", "quality")
_c("purified_quality", "purified quality", "purification paper: mean ½ [SSIM_sk(x, D(x')) + PSNR_sk(x, D(x'))/80]; "
   + _SK + "D(x') = x, which makes the mean inf", "higher", "quality")
_c("similarity_aligned", "similarity (aligned)", "mean [SSIM_sk(A(x), D(x')) + PSNR_sk(A(x), D(x'))/40]; A(x) = "
   "the clean image in the defense's output geometry; scikit-image's SSIM and PSNR as in similarity", "higher",
   "quality")
_c("purified_quality_aligned", "purified quality (aligned)", "mean ½ [SSIM_sk(A(x), D(x')) + PSNR_sk(A(x), "
   "D(x'))/80]; A(x) = the clean image in the defense's output geometry; scikit-image's SSIM and PSNR, as in "
   "purified_quality", "higher", "quality")

# -- agreement with subjective scores (docs/measures.md#correlation-with-subjective-scores): both sides oriented to quality ----------------
_c("srocc_s_sdef", "SROCC(s, s_D)", "Spearman ρ between clean and defended-clean scores (the same metric's: "
   "no orientation needed)", "higher", "correlation")
CORRELATION_TAGS = {"clean": "s", "def_clean": "s_D", "def_adv": "s'_D", "adv": "s'"}
_ORIENTED = "both oriented to quality (+1: agreement, −1: an inverted ranking)"
for _tag, _sym in CORRELATION_TAGS.items():
    _c(f"srocc_{_tag}", f"SROCC(m, {_sym})", f"Spearman ρ (scipy.stats.spearmanr) of m and {_sym}, {_ORIENTED}",
       "higher", "correlation")
    _c(f"krocc_{_tag}", f"KROCC(m, {_sym})", f"Kendall τ-b (scipy.stats.kendalltau) of m and {_sym}, {_ORIENTED}",
       "higher", "correlation")
    _c(f"plcc_{_tag}", f"PLCC(m, {_sym})", f"Pearson r of m and {_sym} after the 4-parameter VQEG logistic "
       "ŷ = (β1 − β2)/(1 + exp(−(x − β3)/|β4|)) + β2, both oriented to quality, signed by the mapping's slope",
       "higher", "correlation")
    _c(f"plcc_raw_{_tag}", f"PLCC raw(m, {_sym})", f"Pearson r of m and {_sym} without mapping, {_ORIENTED}",
       "higher", "correlation")
    _c(f"rmse_{_tag}", f"RMSE(m, {_sym})", f"RMSE of the logistic-mapped {_sym} against the oriented m, in MOS units",
       "lower", "correlation")
    _c(f"plcc_mapping_failed_{_tag}", f"PLCC fit failed ({_sym})", "the logistic could not be fitted (too few "
       "images, or no convergence: then plcc is the raw PLCC and rmse NaN)", None, "correlation")
for _tag in ("clean", "def_clean"):
    for _end, _word in (("lo", "lower"), ("hi", "upper")):
        _c(f"srocc_{_tag}_{_end}", f"SROCC(m, {CORRELATION_TAGS[_tag]}) {_end}", f"{_word} end of the 95 % "
           f"percentile bootstrap interval of srocc_{_tag} (1000 resamples of the images, seed 0)", None,
           "correlation")
_c("plcc_mapping", "PLCC mapping", "monotonic mapping fitted before PLCC (logistic4: VQEG)", None, "correlation")
_c("mos_lower_better", "DMOS scale", "the subjective scale's direction the correlations were oriented by (true: "
   "lower is better, DMOS as in LIVE and CSIQ)", None, "correlation", per_image=True)

# -- certificates of a smoothing defense (docs/measures.md#certified-defenses), clean branch -----------------------------
_c("cert_width", "certified width", "mean y_(q_u) − y_(q_l) over non-abstaining images (score units)", "lower",
   "certificate")
_c("cert_delta", "cert. δ", "mean max(y_(q_u) − median, median − y_(q_l)) over non-abstaining images", "lower",
   "certificate")
_c("cert_delta_norm", "cert. δ / r", "cert_delta / r", "lower", "certificate")
_c("cert_radius", "cert. radius", "Cohen smoothing: mean certified L2 radius σ Φ⁻¹(p̲_A) over non-abstaining "
   "images", "higher", "certificate")
_c("abstain_rate", "abstain", "fraction of images whose certificate abstains (the order statistic does not "
   "exist, or p̲_A ≤ ½)", "lower", "certificate")
_c("adv_within_cert", "s'_D in interval", "fraction of images whose attacked smoothed score lies in the clean "
   "image's certified interval (guaranteed only when the attack's L2 norm is within the certified radius)",
   "higher", "certificate")
for _tag, _img in (("clean", "x"), ("adv", "x'")):   # per image, from the defense's certificate
    _c(f"cert_lo_{_tag}", f"cert. lo ({_img})", f"lower end of the certified interval of the smoothed score of "
       f"{_img}: y_(q_l) (Cohen: the top bin's lower edge); NaN when it abstains", None, "certificate", "record")
    _c(f"cert_hi_{_tag}", f"cert. hi ({_img})", f"upper end of the certified interval of the smoothed score of "
       f"{_img}: y_(q_u) (Cohen: the top bin's upper edge); NaN when it abstains", None, "certificate", "record")
    _c(f"cert_delta_{_tag}", f"cert. δ ({_img})", "max(y_(q_u) − median, median − y_(q_l)) (Cohen: half the "
       "bin width)", "lower", "certificate", "record")
    _c(f"abstain_{_tag}", f"abstains ({_img})", "no certificate: the order statistic does not exist, or "
       "p̲_A ≤ ½", None, "certificate", "record")
    _c(f"cert_radius_{_tag}", f"cert. radius ({_img})", "Cohen smoothing: certified L2 radius σ Φ⁻¹(p̲_A) "
       "(NaN when it abstains)", "higher", "certificate", "record")

# -- time --------------------------------------------------------------------------------------------
_c("seconds_def_adv", "defense s/img", "mean wall time of D per attacked image (s)", "lower", "cost", per_image=True)
_c("seconds_def_clean", "defense s/img (clean)", "mean wall time of D per clean image (s)", "lower", "cost",
   per_image=True)
_c("nan_reasons", "why NaN", "why measures of the cell are NaN ('; '-separated; empty: none)")

# -- leaderboard and ranking (docs/leaderboard.md) ---------------------------------------------------
_c("rank", "rank", "order within (dataset, metric, budget) by the distance to the ideal (docs/leaderboard.md); "
   "baselines are not ranked", "lower", "ranking", "leaderboard")
_c("rank_low", "rank low", "best end of the rank's 95 % bootstrap interval (resampled images; ties in the "
   "defense's favour), widened to contain the rank", None, "ranking", "leaderboard")
_c("rank_high", "rank high", "worst end of the rank's 95 % bootstrap interval (ties against the defense), widened "
   "to contain the rank; defenses whose [rank_low, rank_high] overlap are not separable", None, "ranking",
   "leaderboard")
_c("separable", "not separable from", "the defenses whose rank interval overlaps this one's", None, "ranking",
   "leaderboard")
_c("distance", "distance to ideal", "√(mean_k (1 − u_k)²) over u = clip(gain removed, 0, 1), clip(quality, 0, 1), "
   "clip(fidelity, 0, 1) (a missing value counts 0)", "lower", "ranking", "leaderboard")
_c("budget_label", "budget", "the attacks' budget with its unit: the worst case and the reference are taken per "
   "budget", None, "cell", "leaderboard")
_c("worst_gain", "worst g_D", "max over the attacks met at the budget (adaptive and transfer) of "
   "mean d · sign · (s'_D − s_D) / r", "lower", "defense", "leaderboard")
_c("reference_gain", "g without defense", "the strongest attack's gain on the baseline (identity) at the same "
   "budget: max over its attacks of mean d · sign · (s' − s) / r", None, "defense", "leaderboard")
_c("bias", "bias", "mean |s_D − s| / r: the defense's own shift of clean scores (a cost, not robustness)", "lower",
   "quality", "leaderboard")
_c("fidelity", "fidelity", "SROCC(s, s_D): the undefended metric's ranking of clean images that the defended "
   "metric keeps (needs no MOS; SROCC(m, s_D) is shown beside it)", "higher", "correlation", "leaderboard")
_c("fidelity_s", "SROCC(s, s_D)", "Spearman ρ of the clean and defended-clean scores", None, "correlation",
   "leaderboard")
_c("fidelity_m", "SROCC(m, s_D)", "Spearman ρ of MOS and the defended-clean scores, both oriented to quality", None,
   "correlation", "leaderboard")
_c("notes", "flags", "what is unusual for the defense in its section: no adaptive attack met (optimistic bound), "
   "makes the metric easier to attack, quality or bias outside every other defense's interval", None, "ranking",
   "leaderboard")
_c("baseline", "baseline", "the defense declares itself the undefended reference: the section's reference row, "
   "never ranked", None, "cell", "leaderboard")
_c("worst_robust_gain", "worst robust gain", "max over the attacks met of mean |s − s'_D| / r", "lower", "defense",
   "leaderboard")
_c("worst_attack", "worst attack", "the attack with the largest robust gain (the strongest met)", None, "defense",
   "leaderboard")
_c("both_defended_gain", "both-defended gain", "mean |s_D − s'_D| / r under the worst attack", "lower", "defense",
   "leaderboard")
_c("removed", "gain removed", "1 − worst g_D / g of the strongest attack on identity at the same budget (1: the "
   "attack no longer moves the defended score, 0: as much as without defense, < 0: the defense makes the metric "
   "easier to attack)", "higher", "defense", "leaderboard")
_c("attacked_quality", "quality of x'", "½[SSIM(x, x') + PSNR(x, x')/80]: the purified-quality formula applied to "
   "the attacked image itself (what no defense leaves)", None, "quality", "leaderboard")
_c("quality", "purified quality (ranked)", "mean ½ [SSIM(A(x), D(x')) + PSNR(A(x), D(x'))/80] under the worst "
   "attack (the project's PSNR, capped at 100 dB; A(x) = x for a defense that moves no pixel)", "higher", "quality",
   "leaderboard")
_c("n_attacks", "attacks", "attacks met in any run", None, "cell", "leaderboard")
_c("adaptive", "adaptive attack met", "at least one attack saw the defense (EOT/BPDA)", None, "cell", "leaderboard")
_c("runs", "runs", "runs the row is merged from", None, "cell", "leaderboard")

for _n in ("worst_gain", "removed", "quality", "fidelity", "bias"):
    for _end, _word in (("lo", "lower"), ("hi", "upper")):
        _c(f"{_n}_{_end}", f"{_n} {_end}", f"{_word} end of the 95 % percentile bootstrap interval of {_n} (images "
           "resampled, worst case and reference recomputed per resample)", None, "ranking", "leaderboard")

COLUMNS: dict[str, Column] = {c.name: c for c in _BASE}
assert len(COLUMNS) == len(_BASE), "a column is defined twice"

# The leading columns of records.csv (the cell, then the image and its scores); the rest follow as stored.
RECORD_LEAD: list[str] = [*CELL, *(c.name for c in _BASE if c.group == "image")]
# The columns a reader looks at first in summary.csv (in this order), and the only ones of summary.md.
HEADLINE: list[str] = [*CELL, "n_images", "abs_gain", "msu_abs_gain", "msu_abs_gain_lo", "msu_abs_gain_hi",
                       "defended_gain", "defense_bias", "robust_abs_gain", "both_defended_abs_gain", "psnr_def_adv",
                       "ssim_def_adv", "purified_quality",
                       "srocc_clean", "srocc_def_clean", "srocc_def_adv", "plcc_clean", "plcc_def_clean",
                       "seconds_def_adv", "robustness_R", "cert_width", "cert_delta_norm", "abstain_rate",
                       "adaptive_attack", "eot_samples", "rank", "rank_low", "rank_high"]


@functools.cache
def column(name: str) -> Column:
    """The schema entry of ``name``; a plain one (its name as title, no direction) for an unknown column."""
    return COLUMNS.get(name) or Column(name, name)


def names(kind: Kind | None = None, *, in_records: bool | None = None) -> list[str]:
    """Column names in schema order: of one ``kind``, and/or those ``records.csv`` holds (or does not)."""
    return [c.name for c in _BASE if (kind is None or c.kind == kind)
            and (in_records is None or c.in_records == in_records)]


__all__ = ["CELL", "COLUMNS", "CORRELATION_TAGS", "GROUPS", "HEADLINE", "MEASURES_DOC", "RECORD_LEAD", "Column",
           "column", "names"]

"""build_report(PATH): the runs under PATH -> report.md, CSV tables and PNG figures in one folder.

Sources, all optional but results.json: each run's results.json (the tables), scores.npz (angle
histograms), diagnostics.json (confidence, KL check, intra/inter angles), csv/metrics.csv (learning
curves); head_scaling.json (weakness 1; measured by the `measure` passed in when absent); a folder of toy models.
Groups of trained checkpoints on one unseen set (report/checkpoints.py) get a section of their own.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marginface.heads.losses import target_logit_gradient
from marginface.report import figures, identity_scaling, scaling
from marginface.report.aggregate import (
    ANGLES,
    COMPARED,
    METRICS,
    REFERENCES,
    Paired,
    baseline_row,
    is_baseline,
    paired_table,
    row_table,
)
from marginface.report.checkpoints import (
    PAIR_METRICS,
    paired_on_same_pairs,
    reference_row,
    unpaired_rows,
)
from marginface.report.runs import Group, Run, collect
from marginface.report.stats import Interval, mean_ci

ANGLE_EDGES = np.linspace(0.0, 180.0, 91)
DAGGER = "†"


# -- formatting -------------------------------------------------------------------------------
def fmt_value(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    if digits == 0:
        return f"{value:+,.0f}" if sign else f"{value:,.0f}"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def fmt_interval(i: Interval, digits: int, n_expected: int | None = None) -> str:
    """'mean ± half-width' (95% t); the count when it differs from the row's; 'n/m' when unmeasured."""
    if i.n == 0:
        return "n/m"
    if i.n == 1:
        return f"{fmt_value(i.mean, digits)} (n=1)"
    if digits == 0 and i.std == 0:
        text = fmt_value(i.mean, 0)
    else:
        text = f"{fmt_value(i.mean, digits)} ± {fmt_value(i.half_width, digits)}"
    return text + (f" (n={i.n})" if n_expected is not None and i.n != n_expected else "")


def fmt_paired(p: Paired) -> str:
    i, d = p.interval, max(p.metric.digits, 3)
    if i.n == 0:
        return "n/m"
    if i.n < 2:
        return f"{fmt_value(i.mean, d, True)} (n=1, no interval)"
    mark = "" if p.shown else f" {DAGGER}"
    return f"{fmt_value(i.mean, d, True)} [{fmt_value(i.lo, d, True)}, {fmt_value(i.hi, d, True)}]{mark}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def rel(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


# -- per-run extras -----------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def angle_histograms(runs: Sequence[Run]) -> dict[str, Any] | None:
    """Genuine/impostor pair-angle densities averaged over the runs that kept scores.npz."""
    dens: dict[str, list[np.ndarray]] = {"genuine": [], "impostor": []}
    means: dict[str, list[float]] = {"genuine": [], "impostor": []}
    used = 0
    for run in runs:
        try:
            with np.load(run.path / "scores.npz") as z:
                # an S-normalised run (eval.score_norm) keeps its cosines beside its scores
                key = "cosines" if "cosines" in z.files else "scores"
                scores, issame = z[key].astype(np.float64), z["issame"].astype(bool)
        except (OSError, KeyError, ValueError):
            continue
        angles = np.degrees(np.arccos(np.clip(scores, -1.0, 1.0)))
        used += 1
        for kind, mask in (("genuine", issame), ("impostor", ~issame)):
            if mask.any():
                dens[kind].append(np.histogram(angles[mask], ANGLE_EDGES, density=True)[0])
                means[kind].append(float(angles[mask].mean()))
    if not used:
        return None
    out: dict[str, Any] = {"runs": used}
    for kind in dens:
        out[kind] = np.mean(dens[kind], axis=0) if dens[kind] else None
        out[f"{kind}_mean"] = float(np.mean(means[kind])) if means[kind] else float("nan")
    return out


def learning_curves(runs: Sequence[Run]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per logged epoch metric: (epochs, mean over runs, (min, max) over runs) from csv/metrics.csv."""
    keys = ("train/loss_epoch", "train/accuracy", "val/accuracy", "open_set/eer")
    per_run: list[dict[str, dict[int, float]]] = []
    for run in runs:
        try:
            with open(run.path / "csv" / "metrics.csv", newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError:
            continue
        series: dict[str, dict[int, float]] = {k: {} for k in keys}
        for row in rows:
            for k in keys:
                if row.get(k) not in (None, "") and row.get("epoch") not in (None, ""):
                    series[k][int(float(row["epoch"]))] = float(row[k])
        per_run.append(series)
    out = {}
    for k in keys:
        epochs = sorted({e for s in per_run for e in s[k]})
        if not epochs:
            continue
        values = [[s[k][e] for s in per_run if e in s[k]] for e in epochs]
        out[k] = (
            np.array(epochs) + 1,
            np.array([np.mean(v) for v in values]),
            (np.array([min(v) for v in values]), np.array([max(v) for v in values])),
        )
    return out


# -- the report -----------------------------------------------------------------------------------
class Report:
    """Collects markdown lines and summary sentences while the sections are written."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.lines: list[str] = []
        self.summary: list[tuple[int, str]] = []  # (section, sentence): printed by section

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def figure(self, path: Path, caption: str) -> None:
        self.add(f"![{caption}]({rel(path, self.out)})", "", f"*{caption}*", "")


def write_csvs(
    out: Path, groups: Sequence[Group], tables: Mapping[str, Any], paired: Mapping[str, Any]
) -> None:
    with open(out / "comparison.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "row", "metric", "n", "mean", "ci95_lo", "ci95_hi", "std"])
        for g in groups:
            for row, cells in tables[g.key].items():
                for metric, i in cells.items():
                    w.writerow([g.title, row, metric, i.n, i.mean, i.lo, i.hi, i.std])
    for reference in REFERENCES:  # paired.csv against softmax, paired_arcface.csv against ArcFace
        name = "paired.csv" if reference == "softmax" else f"paired_{reference}.csv"
        with open(out / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["group", "row", "metric", "n_pairs", "mean_diff", "ci95_lo", "ci95_hi", "shown"]
            )
            for g in groups:
                for row, items in paired.get(g.key, {}).get(reference, {}).items():
                    for p in items:
                        i = p.interval
                        w.writerow([g.title, row, p.metric.name, i.n, i.mean, i.lo, i.hi, p.shown])


def section_comparison(rep: Report, group: Group, table, paired) -> None:
    rows = group.rows()
    rep.add(
        f"### {group.title}",
        "",
        f"`{group.slug}`: {len(group.runs)} runs. Protocol (data and "
        "evaluation settings shared by every run here):",
        "",
        "```json",
        json.dumps(group.protocol, sort_keys=True),
        "```",
        "",
    )
    header = ["head", "runs", "folds x seeds"] + [m.name for m in METRICS]
    body = []
    for row, cells in table.items():
        runs = rows[row]
        folds = len({r.key[0] for r in runs})
        seeds = len({r.key[1] for r in runs})
        body.append(
            [row, str(len(runs)), f"{folds} x {seeds}"]
            + [fmt_interval(cells[m.name], m.digits, len(runs)) for m in METRICS]
        )
    rep.add(
        "Mean ± half-width of the 95% confidence interval (t-distribution over the runs). n/m = not "
        "measurable: the rate times the number of trials is below one (e.g. TAR@FAR=1e-4 with fewer "
        "than 10,000 impostor pairs); (n=k) = only k of the row's runs measured it.",
        "",
    )
    rep.add(*md_table(header, body), "")
    if not paired["softmax"]:
        rep.add(
            "No paired comparison: no softmax (criterion=ce) run shares a fold, seed and recipe with another head here.",
            "",
        )
    for reference, items_of in paired.items():
        if not items_of:
            continue
        chosen = baseline_row(group, reference)
        against = reference
        if chosen != reference:
            against = (
                f"{chosen}, the {reference} row that the other {reference} settings are paired "
                "with too"
            )
        rep.add(
            f"**Paired against {against}** (same fold, seed and recipe): mean difference (head "
            f"minus {reference}) [95% CI, paired t]. {DAGGER} = the interval includes zero: **the "
            "difference is not shown on this data**.",
            "",
        )
        header = ["head", "pairs"] + [m.name for m in COMPARED]
        body = [
            [row, str(max(p.interval.n for p in items))] + [fmt_paired(p) for p in items]
            for row, items in items_of.items()
        ]
        rep.add(*md_table(header, body), "")


def section_checkpoints(rep: Report, group: Group, table) -> None:
    """Trained checkpoints on one unseen set: a row per checkpoint, paired on the same pairs."""
    rows = group.rows()
    rep.add(
        f"### {group.title}",
        "",
        f"`{group.slug}`: {len(group.runs)} checkpoints evaluated on the same set, every identity "
        "unseen; one run each, so no interval over runs. Kept apart from the in-domain groups. "
        "Protocol:",
        "",
        "```json",
        json.dumps(group.protocol, sort_keys=True),
        "```",
        "",
    )
    shown = [m for m in METRICS if m.path[0] == "open_set"]
    header = ["checkpoint", "head", "pairs"] + [m.name for m in shown]
    body = []
    for row, runs in rows.items():
        run = runs[0]
        cells = [fmt_value(table[row][m.name].mean, m.digits) for m in shown]
        body.append([row, run.loss, f"{run.get('pairs', 'count') or 'n/a'}"] + cells)
    rep.add(*md_table(header, body), "")
    paired = paired_on_same_pairs(group)
    if paired:
        rep.add(
            f"**Paired on the same pairs against {reference_row(group)}** (row minus reference) "
            "[95% paired bootstrap over the pairs, 200 resamples; pairs share images, so the "
            f"interval is optimistic]. {DAGGER} = the interval includes zero.",
            "",
        )
        by_row: dict[str, dict[str, str]] = {}
        for p in paired:
            text = "n/m" if p.difference is None else fmt_value(p.difference, 4, sign=True)
            if p.lo is not None and p.hi is not None:
                text += f" [{p.lo:+.4f}, {p.hi:+.4f}]" + ("" if p.shown else f" {DAGGER}")
            by_row.setdefault(p.row, {})[p.metric] = text
        names = [name for name, _, _ in PAIR_METRICS]
        body = [[row, *(cells.get(n, "n/a") for n in names)] for row, cells in by_row.items()]
        rep.add(*md_table(["checkpoint", *names], body), "")
    others = unpaired_rows(group, paired)
    if others:
        rep.add(
            "Not paired (other pairs scored than the reference's, or no scores.npz): "
            + "; ".join(others),
            "",
        )


def section_weakness2(rep: Report, group: Group, table) -> None:
    rows = group.rows()
    rep.add(f"### {group.title}", "")
    path = figures.plot_closed_vs_open(
        table,
        ["closed-set accuracy", "TAR@FAR=1e-2", "TAR@FAR=1e-3"],
        rep.out / f"{group.slug}_closed_vs_open.png",
        group.short,
    )
    rep.figure(
        path,
        "Closed-set accuracy (held-out images of training identities) beside open-set "
        "TAR@FAR (pairs of identities never trained on); whiskers: 95% CI",
    )
    hists = {row: h for row, runs in rows.items() if (h := angle_histograms(runs))}
    if hists:
        path = figures.plot_angle_histograms(
            hists,
            ANGLE_EDGES,
            rep.out / f"{group.slug}_angles.png",
            f"Open-set pair angles, {group.short}",
        )
        rep.figure(
            path,
            "Angle between the embeddings of genuine (same identity) and impostor pairs of "
            "unseen identities, densities averaged over runs; vertical lines: means",
        )
    else:
        rep.add("No scores.npz beside these results: no angle histograms.", "")
    stats = angle_stats(rows)
    panels = [("open-set pairs (results.json)", "genuine angle (deg)", "impostor angle (deg)")]
    if any(stats[r]["W-EX"].n for r in stats):
        panels += [
            ("closed set: feature vs own class weight, min between weights", "W-EX", "W-inter"),
            (
                "closed set: feature vs class centre, min between centres",
                "intra (closed)",
                "inter (closed)",
            ),
            (
                "open set: feature vs identity centre, min between centres",
                "intra (open)",
                "inter (open)",
            ),
        ]
    path = figures.plot_angle_stats(
        stats,
        panels,
        rep.out / f"{group.slug}_angle_stats.png",
        f"Intra- vs inter-class angles, {group.short}",
    )
    rep.figure(
        path,
        "Intra-class (smaller is tighter) beside inter-class angles (larger is better "
        "separated), degrees, mean and 95% CI over runs",
    )
    keys = list(next(iter(stats.values())))
    rep.add(
        *md_table(
            ["head", *keys], [[r] + [fmt_interval(s[k], 1) for k in keys] for r, s in stats.items()]
        ),
        "",
    )


def angle_stats(rows: Mapping[str, Sequence[Run]]) -> dict[str, dict[str, Interval]]:
    diag_keys = {
        "W-EX": ("closed_set", "w_ex_deg"),
        "W-inter": ("closed_set", "w_inter_deg"),
        "intra (closed)": ("closed_set", "intra_deg"),
        "inter (closed)": ("closed_set", "inter_deg"),
        "intra (open)": ("open_set", "intra_deg"),
        "inter (open)": ("open_set", "inter_deg"),
    }
    out = {}
    for row, runs in rows.items():
        diags = [(read_json(r.path / "diagnostics.json") or {}).get("angles", {}) for r in runs]
        cells = {m.name: mean_ci(m.of(r) for r in runs) for m in ANGLES}
        for name, (where, key) in diag_keys.items():
            cells[name] = mean_ci(d.get(where, {}).get(key) for d in diags)
        out[row] = cells
    return out


def section_cross_entropy(rep: Report, group: Group) -> None:
    rows = group.rows()
    rep.add(f"### {group.title}", "")
    softmax = [r for r in group.runs if r.loss == "softmax"]
    by_criterion = {c: [r for r in softmax if r.criterion == c] for c in ("ce", "mse")}
    if by_criterion["mse"] and by_criterion["ce"]:
        curves = {
            f"softmax, criterion={c} ({len(r)} runs)": learning_curves(r)
            for c, r in by_criterion.items()
        }
        if any(curves.values()):
            path = figures.plot_learning_curves(
                curves,
                rep.out / f"{group.slug}_ce_vs_mse.png",
                f"Same softmax head, cross-entropy vs squared error, {group.short}",
            )
            rep.figure(
                path,
                "Learning curves from csv/metrics.csv (line: mean over runs; band: min to max). "
                "train/loss_epoch is in each criterion's own units",
            )
    else:
        rep.add(
            "No `criterion=mse` runs beside `criterion=ce` softmax runs here (add them with "
            "`python scripts/train.py -m experiment=... loss=softmax criterion=mse`).",
            "",
        )
    confidence_rows = {}
    body = []
    for row, runs in rows.items():
        diags = [d for r in runs if (d := read_json(r.path / "diagnostics.json"))]
        if not diags:
            continue
        conf = [
            d["confidence"] for d in diags if d.get("confidence", {}).get("open_set", {}).get("n")
        ]
        if conf:
            confidence_rows[row] = {
                w: {
                    k: np.sum([c[w][k] for c in conf], axis=0)
                    for k in ("max_prob_hist", "entropy_share_hist")
                }
                for w in ("closed_set", "open_set")
            }
        gap = mean_ci(
            c["closed_set"].get("max_prob_mean", np.nan)
            - c["open_set"].get("max_prob_mean", np.nan)
            for c in conf
        )
        over = mean_ci(c["open_set"].get("max_prob_over_0.9") for c in conf)
        kl = [d.get("kl_identity", {}) for d in diags]
        worst = max((k.get("max_abs_gap") or 0.0 for k in kl), default=None)
        body.append(
            [
                row,
                fmt_interval(mean_ci(c["closed_set"].get("max_prob_mean") for c in conf), 3),
                fmt_interval(mean_ci(c["open_set"].get("max_prob_mean") for c in conf), 3),
                fmt_interval(gap, 3) + ("" if gap.excludes_zero() else f" {DAGGER}"),
                fmt_interval(over, 3),
                fmt_interval(mean_ci(c["closed_set"].get("entropy_share_mean") for c in conf), 3),
                fmt_interval(mean_ci(c["open_set"].get("entropy_share_mean") for c in conf), 3),
                f"{sum(k.get('n') or 0 for k in kl)} images, max gap {worst:.1e}",
            ]
        )
        if all(is_baseline(r) for r in runs) and conf:
            rep.summary.append((4, _confidence_sentence(group, row, conf, gap)))
    if body:
        rep.add(
            "Softmax posterior (no margin) on held-out images of training identities (known) and "
            "on images of unseen identities, mean ± 95% CI over runs; `gap` = known minus unseen "
            f"max probability, paired within each run ({DAGGER}: includes zero). KL check: "
            "KL(p||q) directly vs CE(p,q) - H(p), p and q the posteriors of an image and its mirror image.",
            "",
        )
        rep.add(
            *md_table(
                [
                    "head",
                    "max prob, known",
                    "max prob, unseen",
                    "gap",
                    "unseen with p>0.9",
                    "entropy/log C, known",
                    "entropy/log C, unseen",
                    "KL = CE - H",
                ],
                body,
            ),
            "",
        )
    if confidence_rows:
        path = figures.plot_confidence(
            confidence_rows,
            rep.out / f"{group.slug}_confidence.png",
            f"Confidence on unseen vs known identities, {group.short}",
        )
        rep.figure(
            path,
            "Share of images by max class probability and by normalised entropy, pooled over runs",
        )
    if not body:
        rep.add(
            "No diagnostics.json in these runs (written by training since the report package "
            "existed): no confidence, KL or intra/inter-angle figures.",
            "",
        )


def _confidence_sentence(group: Group, row: str, conf: list[dict], gap: Interval) -> str:
    known = mean_ci(c["closed_set"].get("max_prob_mean") for c in conf)
    unseen = mean_ci(c["open_set"].get("max_prob_mean") for c in conf)
    over = mean_ci(c["open_set"].get("max_prob_over_0.9") for c in conf)
    verdict = "shown" if gap.excludes_zero() else "not shown on this data"
    return (
        f"{group.title}: {row} gives images of unseen identities a mean max class probability of "
        f"{fmt_interval(unseen, 3)} (known identities: {fmt_interval(known, 3)}; lower confidence on "
        f"unseen faces {verdict}); {fmt_value(100 * over.mean if over.mean is not None else None, 0)}% "
        "of unseen-face images still get p > 0.9 for some training identity."
    )


def section_scaling(rep: Report, data: Mapping[str, Any] | None, source: str) -> None:
    if data is None:
        rep.add("Not measured (`--no-measure` and no head_scaling.json).", "")
        return
    path = figures.plot_head_scaling(data, rep.out / "head_scaling.png")
    rep.add(
        f"Source: {source}. Every head's weight is C x D; what differs between heads is the "
        "cost of the step.",
        "",
    )
    rep.figure(
        path,
        "Head parameters, step memory and forward+backward time against the number of "
        "classes, log-log; dotted lines: identities of CASIA-WebFace, MS1M and WebFace42M",
    )
    measured = [r for r in data["rows"] if r["measured"]]
    extrapolated = sorted({r["classes"] for r in data["rows"] if not r["measured"]})
    top = max((r["classes"] for r in measured), default=None)
    where = f"Step time measured up to C = {top:,} classes; " if top else "No step time measured; "
    if extrapolated:
        where += f"extrapolated (linear in C, dashed) at C = {', '.join(f'{c:,}' for c in extrapolated)}."
    else:
        where += "nothing extrapolated."
    rep.add(where + " Parameters and memory are exact counts at every C.", "")
    body = []
    for r in data["at_datasets"]:
        body.append(
            [
                r["head"],
                f"{r['dataset']} ({r['classes']:,})",
                f"{r['parameters']:,}",
                f"{r['bytes'] / 2**30:.2f}",
                f"{r['memory_bytes'] / 2**30:.2f}",
                "n/a" if r["step_s"] is None else f"{r['step_s'] * 1e3:,.1f}",
                r["time"],
            ]
        )
    rep.add(
        *md_table(
            [
                "head",
                "data set (identities)",
                "parameters",
                "weight GiB",
                "step memory GiB",
                "fwd+bwd ms",
                "time is",
            ],
            body,
        ),
        "",
    )
    rep.summary.append((2, _scaling_sentence(data)))


def _scaling_sentence(data: Mapping[str, Any]) -> str:
    soft = {r["dataset"]: r for r in data["at_datasets"] if r["head"] == "softmax"} or {
        r["dataset"]: r for r in data["at_datasets"]
    }
    parts = [
        f"{name}: {r['parameters'] / 1e6:,.1f}M parameters ({r['bytes'] / 2**30:.2f} GiB fp32, "
        f"{r['memory_bytes'] / 2**30:.2f} GiB in a training step)"
        for name, r in soft.items()
    ]
    pts = sorted(
        (r["classes"], r["step_s"])
        for r in data["rows"]
        if r["measured"] and r["head"] == "softmax"
    )
    growth = ""
    if len(pts) >= 2 and pts[0][1] > 0:
        (c1, t1), (c2, t2) = pts[0], pts[-1]
        slope = np.log(t2 / t1) / np.log(c2 / c1)
        growth = (
            f" Measured softmax step time went from {t1 * 1e3:,.1f} ms at {c1:,} classes to "
            f"{t2 * 1e3:,.1f} ms at {c2:,} (log-log slope {slope:.2f}; 1 = proportional to C)."
        )
    return (
        f"Weakness 1 (shown by construction and by measurement): the classification matrix is C x D "
        f"(D={data['dim']}), so the head alone needs " + "; ".join(parts) + "." + growth
    )


def section_gradient(rep: Report) -> None:
    p = np.linspace(0.001, 0.999, 500)
    curves = target_logit_gradient(p, num_classes=10)
    path = figures.plot_target_gradient(curves, rep.out / "ce_vs_mse_gradient.png", 10)
    rep.figure(path, "Gradient on the target logit against its predicted probability (10 classes)")
    probe = target_logit_gradient(np.array([0.01, 0.1, 0.5, 0.9]), num_classes=10)
    rows = [
        [f"{pp:.2f}", f"{c:+.4f}", f"{m:+.4f}"]
        for pp, c, m in zip(probe["p"], probe["ce"], probe["mse"], strict=True)
    ]
    rep.add(*md_table(["p_y", "dCE/dz_y", "dMSE/dz_y"], rows), "")
    gap = float(np.abs(curves["ce"] - curves["ce_analytic"]).max())
    rep.add(f"Autograd's cross-entropy gradient matches p - 1 to {gap:.1e} over the curve.", "")
    rep.summary.append(
        (
            4,
            f"Cross-entropy vs squared error (analytic, shown): at p_y = 0.01 the target-logit gradient is "
            f"{probe['ce'][0]:+.3f} for CE but {probe['mse'][0]:+.4f} for MSE, which vanishes as a wrong "
            "prediction gets more confident; CE's grows towards -1.",
        )
    )


def section_summary_group(rep: Report, group: Group, table, paired) -> None:
    rows = group.rows()
    soft = [row for row in table if all(is_baseline(r) for r in rows[row])]
    if soft:
        cells = table[soft[0]]
        rep.summary.append(
            (
                3,
                f"{group.title}: {soft[0]} reaches closed-set accuracy {fmt_interval(cells['closed-set accuracy'], 3)} "
                f"on held-out images of its training identities, while on identities it never saw TAR@FAR=1e-3 is "
                f"{fmt_interval(cells['TAR@FAR=1e-3'], 3)} and EER {fmt_interval(cells['EER'], 4)} "
                "(different quantities: a description of the gap, not a test).",
            )
        )
    for reference, row, items in (
        (ref, row, items) for ref, table_of in paired.items() for row, items in table_of.items()
    ):
        better = [f"{p.metric.name} {fmt_paired(p)}" for p in items if p.better]
        worse = [f"{p.metric.name} {fmt_paired(p)}" for p in items if p.better is False]
        not_shown = [p.metric.name for p in items if not p.shown and p.interval.n >= 2]
        unmeasured = [p.metric.name for p in items if p.interval.n < 2]
        n = max(p.interval.n for p in items)
        text = f"{group.title}, {row} vs {reference} ({n} paired runs): "
        text += ("better on " + "; ".join(better)) if better else "better on nothing shown"
        if worse:
            text += "; worse on " + "; ".join(worse)
        if not_shown:
            text += "; not shown on this data: " + ", ".join(not_shown)
        if unmeasured:
            text += "; too few measured pairs for an interval: " + ", ".join(unmeasured)
        rep.summary.append((3, text + "."))


def resolve_scaling(
    root: Path,
    out: Path,
    given: Mapping[str, Any] | str | Path | None,
    measure: Callable[..., dict[str, Any]] | None,
    log: Callable[[str], None] | None,
) -> tuple[dict[str, Any] | None, str]:
    if isinstance(given, Mapping):
        return dict(given), "measurements passed in"
    if given is not None:
        return scaling.load(given), f"`{given}`"
    found = next(
        (p for p in (root / "head_scaling.json", out / "head_scaling.json") if p.is_file()), None
    )
    if found is not None:
        return scaling.load(found), f"`{found}`"
    if not measure:
        return None, ""
    if log:
        log(
            "measuring the heads against the number of classes (weakness 1); pass --scaling FILE to reuse"
        )
    data = measure(log=log)
    scaling.save(data, out / "head_scaling.json")
    return data, "measured while writing this report (saved as head_scaling.json)"


def build_report(
    root: str | Path,
    out: str | Path | None = None,
    scaling_data: Mapping[str, Any] | str | Path | None = None,
    measure: Callable[..., dict[str, Any]] | None = None,
    toy_dir: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> Path:
    """Write report.md (+ comparison.csv, paired.csv, paired_arcface.csv, PNG figures) for the runs under `root`; return its path.

    `measure`: called (with `log=`) for the head-scaling measurements when neither `scaling_data` nor a
    head_scaling.json is found (scripts/report.py passes marginface.experiments.scaling.measure_for_report);
    None or False: that section says it was not measured. The report itself trains and times nothing.
    """
    root = Path(root)
    collection = collect(root)
    out = Path(out) if out is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(out)
    groups = [g for g in collection.groups if not g.checkpoints]
    of_checkpoints = [g for g in collection.groups if g.checkpoints]
    tables = {g.key: row_table(g) for g in collection.groups}
    # every head against softmax, and against ArcFace where the group trained it
    paired = {g.key: {ref: paired_table(g, reference=ref) for ref in REFERENCES} for g in groups}
    write_csvs(out, groups + of_checkpoints, tables, paired)

    rep.add(
        "# marginface report: softmax against margin heads on unseen identities",
        "",
        f"Generated {dt.datetime.now():%Y-%m-%d %H:%M} from `{root}`: {len(collection.runs)} runs used "
        f"in {len(collection.groups)} group(s); {len(collection.problems)} run folder(s) not usable (listed at the "
        "end). Runs on different data or protocols are never averaged together. How to read this: "
        "docs/report.md.",
        "",
    )
    if any(g.synthetic for g in groups):
        rep.add(
            "**Groups marked SYNTHETIC use generated identities, not faces**: they measure the "
            "mechanism with many identities and tight intervals, not face-recognition accuracy.",
            "",
        )

    rep.add("## 1. Comparison", "")
    if not collection.groups:
        rep.add("No usable results.json under this folder.", "")
    for g in groups:
        section_comparison(rep, g, tables[g.key], paired[g.key])
        section_summary_group(rep, g, tables[g.key], paired[g.key])
    for g in of_checkpoints:
        section_checkpoints(rep, g, tables[g.key])

    rep.add("## 2. Weakness 1: the head grows with the number of identities", "")
    data, source = resolve_scaling(root, out, scaling_data, measure, log)
    section_scaling(rep, data, source)

    rep.add(
        "## 3. Weakness 2: separable for closed-set classification, not discriminative enough for "
        "open-set recognition",
        "",
    )
    for g in groups:
        section_weakness2(rep, g, tables[g.key])
    section_toy(rep, toy_dir)
    section_identity_scaling(rep, groups)

    rep.add("## 4. Cross-entropy checks", "")
    section_gradient(rep)
    for g in groups:
        section_cross_entropy(rep, g)

    rep.add("## 5. Summary (generated from the numbers above)", "")
    rep.add(
        "An effect counts as shown when its 95% interval excludes zero; everything else is reported "
        "as not shown on this data, which is not evidence of no effect.",
        "",
    )
    rep.add(*[f"- {s}" for _, s in sorted(rep.summary, key=lambda item: item[0])], "")

    rep.add("## Runs not used", "")
    if not collection.problems and not collection.superseded:
        rep.add("None: every run folder under the path had a readable results.json.", "")
    for p in collection.problems:
        rep.add(f"- `{p.path}`: {p.reason}")
    for p in collection.superseded:
        rep.add(f"- `{p.path}`: {p.reason}")
    rep.add("")
    path = out / "report.md"
    path.write_text("\n".join(rep.lines))
    return path


def section_toy(rep: Report, toy_dir: str | Path | None) -> None:
    from marginface.report.toy import find_toy_runs, toy_figures

    rep.add("### Toy models: 8 identities, 2-D and 3-D embeddings", "")
    runs = find_toy_runs(toy_dir) if toy_dir is not None and Path(toy_dir).is_dir() else {}
    if not runs:
        rep.add(
            "Not included: train them with `python scripts/report.py --toy DIR` and pass "
            "`--toy DIR` with the multirun path.",
            "",
        )
        return
    for path in toy_figures(runs, rep.out):
        rep.figure(path, f"Toy models from `{toy_dir}`: one panel per head, same backbone and data")


def section_identity_scaling(rep: Report, groups: Sequence[Group]) -> None:
    """Where the margin helps: head minus softmax against the number of training identities."""
    rep.add("### Where the margin helps: the effect against the number of training identities", "")
    studies = identity_scaling.find_studies(groups)
    if not studies:
        rep.add(
            "No runs with `data.train_identities` set here (run `experiment=identity_scaling`).", ""
        )
        return
    identity_scaling.write_csv(studies, rep.out / "identity_scaling.csv")
    names = [m.name for m in identity_scaling.SCALING_METRICS]
    for k, study in enumerate(studies):
        suffix = "" if len(studies) == 1 else f"_{k}"
        differences, softmax = study.differences(), study.softmax()
        path = figures.plot_identity_scaling(
            differences,
            softmax,
            names,
            rep.out / f"identity_scaling{suffix}.png",
            study.title,  # describe() names synthetic data SYNTHETIC
        )
        rep.figure(
            path,
            "Paired difference head minus softmax (same split, seed and recipe; 95% t-interval) "
            "against the number of training identities N; last panel: softmax's closed-set "
            "accuracy beside its open-set TAR at each N",
        )
        digits = {m.name: max(3, m.digits) for m in identity_scaling.SCALING_METRICS}
        header = ["head", "metric"] + [f"N={n}" for n in study.groups]
        body = [
            [row, metric] + [fmt_diff(by_n.get(n), digits[metric]) for n in study.groups]
            for row, metrics in differences.items()
            for metric, by_n in metrics.items()
        ]
        rep.add(f"{study.title}: `identity_scaling.csv` holds these with their counts.", "")
        rep.add(*md_table(header, body), "")
        for sentence in identity_scaling.verdicts(study):
            rep.summary.append((3, sentence))


def fmt_diff(i: Interval | None, digits: int) -> str:
    """'mean [low, high]' of a paired difference; the dagger when the interval includes zero."""
    if i is None or i.n == 0:
        return "n/m"
    if i.n < 2:
        return f"{fmt_value(i.mean, digits, True)} (n=1)"
    mark = "" if i.excludes_zero() else f" {DAGGER}"
    lo, hi = fmt_value(i.lo, digits, True), fmt_value(i.hi, digits, True)
    return f"{fmt_value(i.mean, digits, True)} [{lo}, {hi}]{mark} (n={i.n})"

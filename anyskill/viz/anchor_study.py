"""``anyskill anchor-study``: the latent-action study's figure and command (the measurements are gathered by
:mod:`anyskill.eval.anchor_study`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from anyskill.provenance import REPO_ROOT


def plot_anchor_tradeoff(df, title: str = ""):
    """The latent-action study (:func:`anyskill.eval.anchor_study.anchor_tradeoff`'s rows): one panel per measure,
    for each controller (one colour each) the anchored actions over σ (log axis; on the previous latent dotted) and
    the free action as a dashed line of the same colour."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from anyskill.eval.anchor_study import MEASURES

    measures = [m for m in MEASURES if (df["measure"] == m).any()]
    controllers = list(dict.fromkeys(df["controller"]))
    fig, axes = plt.subplots(1, len(measures), figsize=(3.6 * len(measures), 3.8), squeeze=False)
    sigmas = sorted(set(df["anchor_scale"].dropna()))
    for ax, measure in zip(axes[0], measures, strict=True):
        for k, controller in enumerate(controllers):
            d = df[(df["measure"] == measure) & (df["controller"] == controller)]
            colour = f"C{k}"
            for action, style in (("anchored", "o-"), ("anchored_previous", "s:")):
                a = d[d["latent_action"] == action].sort_values("anchor_scale")
                if len(a):
                    ax.plot(a["anchor_scale"], a["value"], style, color=colour, alpha=1.0 if action == "anchored"
                            else 0.6, label=f"{controller}: {action} (σ)")
            free = d[d["latent_action"] == "free"]["value"]
            if len(free):
                ax.axhline(float(free.iloc[0]), ls="--", color=colour, label=f"{controller}: free (the paper's)")
        if sigmas:  # else only free actions were measured: their lines alone
            ax.set_xscale("log")
            ax.set_xticks(sigmas, [f"{v:g}" for v in sigmas])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(min(sigmas) / 1.3, max(sigmas) * 1.3)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("σ of the anchored action")
        ax.set_title(measure, fontsize=9)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:  # a panel may hold lines the first lacks
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8)
    fig.suptitle((title + "\n" if title else "") + "anchored z = normalize(μ_p(s) + σ·a) against free z = normalize(a)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 3), 1, 1))
    return fig


def _anchor_study(args: argparse.Namespace) -> int:
    from anyskill.eval.anchor_study import anchor_tradeoff, gather_e2e
    from anyskill.provenance import Provenance

    if args.keep and not args.seeds:
        print("anyskill anchor-study: error: --keep only applies with --seeds (it keeps the earlier rows of "
              "domain_e2e_seeds.csv); add --seeds LABEL=E2E_JSON ...", file=sys.stderr)
        return 2
    results = Path(args.results)
    if args.e2e:
        missing = [p for p in args.e2e if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"--e2e: no such e2e.json: {', '.join(map(str, missing))}")
        gather_e2e(args.e2e, results / "domain_e2e_latent_action.csv")
    if args.seeds:
        from anyskill.eval.anchor_study import e2e_seed_summary

        pairs = [item.rpartition("=")[::2] for item in args.seeds]  # [LABEL=]E2E_JSON
        runs = [path for _, path in pairs]
        missing = [p for p in runs if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"--seeds: no such e2e.json: {', '.join(map(str, missing))}")
        labels = {path: label for label, path in pairs if label}
        rows = gather_e2e(runs, results / "domain_e2e_seeds.csv", labels, keep=args.keep)
        summary = e2e_seed_summary(rows)
        Provenance("anyskill anchor-study --seeds", config={"runs": runs, "llc_labels": labels,
                                                            "kept_earlier_rows": bool(args.keep)},
                   clip_weights="anyskill-domain (domain model of this humanoid, closed vocabulary — not CLIP)"
                   ).finish().write_csv(summary, results / "domain_e2e_seeds_summary.csv")
        print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    df = anchor_tradeoff(results)
    if df.empty:
        raise FileNotFoundError(f"{results} holds none of the study's measurements (anyskill.eval.anchor_study)")
    prov = Provenance("anyskill anchor-study", config={"results": str(results),
                                                       "sources": sorted(set(df["source"]))}, clip_weights="none")
    prov.finish().write_csv(df, results / "anchor_tradeoff.csv")
    title = "low-level controllers: " + "; ".join(dict.fromkeys(df["controller"]))
    prov.save_figure(plot_anchor_tradeoff(df, title=title), Path(args.figure))
    print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"-> {results / 'anchor_tradeoff.csv'}, {args.figure}")
    return 0


def add_anchor_study_command(sub) -> None:
    """Register ``anchor-study`` on the ``anyskill`` parser's sub-parsers."""
    c = sub.add_parser("anchor-study", help="gather the latent-action measurements (free vs anchored over σ) from "
                       "results/ into results/anchor_tradeoff.csv and a figure", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--results", default=str(REPO_ROOT / "results"))
    c.add_argument("--e2e", nargs="+", metavar="E2E_JSON", help="first gather these domain-e2e runs into "
                   "RESULTS/domain_e2e_latent_action.csv (replacing it)")
    c.add_argument("--seeds", nargs="+", metavar="[LABEL=]E2E_JSON", help="also gather these domain-e2e runs "
                   "(several controllers, actions and seeds; LABEL names the controller where its recorded file name "
                   "does not) into RESULTS/domain_e2e_seeds.csv and summarise the prompts reached and frames fallen "
                   "per seed in RESULTS/domain_e2e_seeds_summary.csv")
    c.add_argument("--keep", action="store_true", help="with --seeds: keep the rows of RESULTS/domain_e2e_seeds.csv "
                   "whose runs are not given again (measured earlier; their run folders may be gone)")
    c.add_argument("--figure", default=str(REPO_ROOT / "figures" / "04_anchor_tradeoff.png"))
    c.set_defaults(func=_anchor_study)

"""The latent-action study (issue 27): what the anchored high-level action, z = normalize(μ_p(s) + σ·a), buys and
costs against the paper's free action, z = normalize(a), gathered from the measurements recorded in ``results/``.

Each source is a CSV with its provenance header, written by the command named:

* ``llc_laptop_untrained_hlc_anchor_scales.csv`` — ``anyskill eval-llc --anchor-scales``: an *untrained* π_H's latents
  from standing (32 characters, 10 s), the fraction that stays up;
* ``llc_hlc_pose_goals.csv`` — ``anyskill compare-llc-pose --latent-action … --anchor-scale …``: π_H trained toward
  the middle pose of 5 clips, mean pose error after training (m);
* ``domain_e2e_latent_action.csv`` — ``anyskill domain-e2e --latent-action … --anchor-scale …`` (:func:`e2e_rows`):
  5 prompts trained with the domain model's reward, how many reach their fact in at least :data:`REACHED` of the
  frames, and the fraction of frames fallen;
* ``table1.csv`` (free) and ``table1_<latent action>_<σ>.csv`` — notebook 07 at ``laptop``: Table 1's fall rate,
  averaged over the four physics-based methods.

The study compares low-level controllers too (:data:`CONTROLLERS`): the shipped one's measurements lie in
``results/``, those of the controller it replaced in ``results/previous_controller/`` (the pose goals of both in
``results/llc_hlc_pose_goals.csv``, told apart by their controller column).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyskill.config.hlc import ANCHOR_SCALE

if TYPE_CHECKING:
    import pandas as pd

REACHED = 0.2
"""A prompt "reaches its fact" when the fact holds in at least this fraction of the trained policy's frames."""

UNTRAINED, POSE, E2E_REACHED, E2E_FALLEN, TABLE1_FALLS = (
    "untrained π_H: stay up", "pose goals: error after training (m)", "domain e2e: prompts reaching their fact (of 5)",
    "domain e2e: frames fallen after training", "Table 1 (laptop): fall rate")
MEASURES = (UNTRAINED, POSE, E2E_REACHED, E2E_FALLEN, TABLE1_FALLS)
"""The study's measures, in the order they are plotted."""

CONTROLLERS = {"tracking route (shipped)": ".", "clip-latent student (previous)": "previous_controller"}
"""The study's controllers: label in ``llc_hlc_pose_goals.csv`` -> the folder under ``results/`` with its other
measurements. The previous one is the clip-latent student (distilled on clip windows only) that the robust student
(switched and random latents in its distillation) replaced."""

PHYSICS_METHODS = ("ours_no_et", "ours_no_enhance", "ours_videoclip", "ours_full")


def action_label(latent_action: str, anchor_scale: float | None) -> tuple[str, float]:
    """("free", nan) or ("anchored"/"anchored_previous", σ) from a latent action and its σ (None: the default)."""
    if latent_action == "free":
        return "free", math.nan
    return latent_action, ANCHOR_SCALE if anchor_scale is None or math.isnan(anchor_scale) else float(anchor_scale)


def parse_pose_label(label: str) -> tuple[str, float]:
    """``compare-llc-pose``'s latent_action column ("free", "anchored", "anchored (σ 2)") -> (action, σ)."""
    m = re.fullmatch(r"(\w+)(?: \(σ ([\d.]+)\))?", label.strip())
    if m is None:
        raise ValueError(f"not a latent action label: {label!r}")
    return action_label(m.group(1), float(m.group(2)) if m.group(2) else None)


def e2e_rows(e2e_json: str | Path) -> list[dict[str, Any]]:
    """The rows of one ``anyskill domain-e2e`` run (its ``e2e.json``) with their latent action and σ (runs made before
    the option existed: free), early termination (before the option: "paper"), the controller's file name and the
    training seed."""
    record = json.loads(Path(e2e_json).read_text())
    rows = []
    for r in record["rows"]:
        action, scale = action_label(r.get("latent_action", "free"), r.get("anchor_scale"))
        rows.append({**r, "latent_action": action, "anchor_scale": scale, "llc": record.get("llc"),
                     "early_termination": r.get("early_termination", "paper"),
                     "seed": record.get("settings", {}).get("seed"), "run": str(e2e_json)})
    return rows


def anchor_tradeoff(results: str | Path, controllers: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (controller, measure, latent action, σ) found in ``results`` (module docstring): columns
    controller, measure, latent_action, anchor_scale (nan for free), value, source (the file, relative to
    ``results``). ``controllers``: label -> folder under ``results`` (default :data:`CONTROLLERS`)."""
    import pandas as pd

    results = Path(results)
    frames = [_tradeoff(results, results / folder, label) for label, folder in (controllers or CONTROLLERS).items()]
    return pd.concat(frames, ignore_index=True)


def _tradeoff(results: Path, folder: Path, controller: str) -> pd.DataFrame:
    """The rows of one controller: its measurements in ``folder``, its pose goals in ``results``."""
    import pandas as pd

    rows: list[dict[str, Any]] = []

    def add(measure: str, action: str, scale: float, value: float, source: Path) -> None:
        rows.append({"controller": controller, "measure": measure, "latent_action": action, "anchor_scale": scale,
                     "value": float(value), "source": str(source.relative_to(results))})

    sweep = folder / "llc_laptop_untrained_hlc_anchor_scales.csv"
    if sweep.is_file():
        df = pd.read_csv(sweep, comment="#")
        add(UNTRAINED, "free", math.nan, df["free_survival"].iloc[0], sweep)
        for _, r in df.iterrows():
            add(UNTRAINED, "anchored", r["anchor_scale"], r["anchored_survival"], sweep)
            add(UNTRAINED, "anchored_previous", r["anchor_scale"], r["anchored_previous_survival"], sweep)
    pose = results / "llc_hlc_pose_goals.csv"
    if pose.is_file():
        df = pd.read_csv(pose, comment="#")
        df = df[df["controller"] == controller]
        for label, g in df.groupby(df.get("latent_action", pd.Series("free", index=df.index))):
            add(POSE, *parse_pose_label(str(label)), g["pose_error_trained_m"].mean(), pose)
    e2e = folder / "domain_e2e_latent_action.csv"
    if e2e.is_file():
        from anyskill.domain.e2e import E2E_PROMPTS

        df = pd.read_csv(e2e, comment="#")
        df = df[df["model"].str.startswith("anyskill-domain") & df["prompt"].isin(list(E2E_PROMPTS))]
        if "early_termination" in df:  # the study compares latent actions under the paper's early termination
            df = df[df["early_termination"].fillna("paper") == "paper"]
        for (action, scale), g in df.groupby(["latent_action", df["anchor_scale"].fillna(-1.0)]):
            key = action_label(str(action), None if scale < 0 else float(scale))
            add(E2E_REACHED, *key, (g["after_fact_rate"] >= REACHED).sum(), e2e)
            add(E2E_FALLEN, *key, g["after_fallen_rate"].mean(), e2e)
    for table in sorted(folder.glob("table1*.csv")):
        m = re.fullmatch(r"table1(?:_(\w+?)_([\d.]+))?", table.stem)
        if m is None:
            continue
        df = pd.read_csv(table, comment="#")
        falls = pd.to_numeric(df[df["key"].isin(PHYSICS_METHODS)]["ours: fall rate"], errors="coerce")
        add(TABLE1_FALLS, *action_label(m.group(1) or "free", float(m.group(2)) if m.group(2) else None),
            falls.mean(), table)
    return pd.DataFrame(rows, columns=["controller", "measure", "latent_action", "anchor_scale", "value", "source"])


E2E_COLUMNS = ("prompt", "fact", "model", "llc", "seed", "latent_action", "anchor_scale", "early_termination",
               "num_envs", "epochs", "before_fact_rate", "after_fact_rate", "before_quantity", "after_quantity",
               "before_fallen_rate", "after_fallen_rate", "after_upright_fact_rate", "train_s", "run")


def gather_e2e(runs: list[str | Path], out: str | Path, labels: dict[str, str] | None = None,
               keep: bool = False) -> pd.DataFrame:
    """The domain-model end-to-end rows of the ``e2e.json`` files ``runs`` (each ``anyskill domain-e2e`` run's, or a
    model's recorded one such as ``anyskill/checkpoints/anyskill_domain_e2e.json``) in one CSV at ``out``, with the
    provenance of this gathering (the runs' own commits are not in their JSON: name them in the commit message).
    ``labels``: run path -> the controller's name in the llc column, where the file name recorded in the run does not
    tell the controller (the same name shipped twice). ``keep``: the rows already in ``out`` whose run is not among
    ``runs`` stay (measured earlier, their run folders possibly gone); their file's commit is recorded."""
    import pandas as pd

    from anyskill.provenance import Provenance, read_csv

    labels = labels or {}
    kept, kept_from = pd.DataFrame(), {}
    if keep and Path(out).is_file():
        old, meta = read_csv(out)
        kept = old[~old["run"].astype(str).isin([str(r) for r in runs])]
        kept_from = {"kept_rows": {"commit": meta.get("commit", "?"), "runs": sorted(set(kept["run"].astype(str)))}}
    prov = Provenance("anyskill anchor-study --e2e", config={"runs": [str(r) for r in runs],
                                                             **({"llc_labels": labels} if labels else {}),
                                                             **kept_from},
                      clip_weights="anyskill-domain (domain model of this humanoid, closed vocabulary — not CLIP)")
    df = pd.DataFrame([{**r, **({"llc": labels[str(run)]} if str(run) in labels else {})}
                       for run in runs for r in e2e_rows(run)])
    df = pd.concat([kept, df], ignore_index=True)
    if "early_termination" in df:
        df["early_termination"] = df["early_termination"].fillna("paper")  # rows gathered before the option
    df = df[[c for c in E2E_COLUMNS if c in df]]
    prov.finish().write_csv(df, out)
    return df


def e2e_seed_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per controller (``llc``), latent action, σ, early termination and training size (epochs, envs): the prompts
    reaching their fact (:data:`REACHED`) and the frames fallen after training, for each seed and over the seeds,
    from :func:`gather_e2e`'s rows (the domain model's rows of the 5 prompts only)."""
    import pandas as pd

    from anyskill.config.domain import E2ESettings
    from anyskill.domain.e2e import E2E_PROMPTS

    d = df[df["model"].str.startswith("anyskill-domain") & df["prompt"].isin(list(E2E_PROMPTS))].copy()
    d["anchor_scale"] = d["anchor_scale"].fillna(-1.0)
    d["early_termination"] = d["early_termination"].fillna("paper") if "early_termination" in d else "paper"
    keys = ["llc", "latent_action", "anchor_scale", "early_termination", "epochs", "num_envs"]
    for key, default in (("epochs", E2ESettings.epochs), ("num_envs", E2ESettings.num_envs)):  # rows without them
        d[key] = d[key].fillna(default).astype(int) if key in d else default
    per_seed = d.groupby([*keys, "seed"]).agg(reached=("after_fact_rate", lambda x: int((x >= REACHED).sum())),
                                              fallen=("after_fallen_rate", "mean")).reset_index()
    out = per_seed.groupby(keys).agg(seeds=("seed", lambda x: ",".join(str(int(v)) for v in sorted(x))),
                                     reached_per_seed=("reached", lambda x: "/".join(str(v) for v in x)),
                                     reached_mean=("reached", "mean"), fallen_mean=("fallen", "mean")).reset_index()
    out["anchor_scale"] = out["anchor_scale"].where(out["anchor_scale"] >= 0)
    return pd.DataFrame(out)


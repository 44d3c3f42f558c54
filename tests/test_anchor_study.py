"""The latent-action study (issue 27, anyskill.eval.anchor_study): the measurements recorded by eval-llc,
compare-llc-pose, domain-e2e and notebook 07 gathered per latent action and σ, the figure and the command."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from anyskill.cli import main
from anyskill.eval.anchor_study import (
    E2E_FALLEN,
    E2E_REACHED,
    POSE,
    TABLE1_FALLS,
    UNTRAINED,
    anchor_tradeoff,
    e2e_seed_summary,
    gather_e2e,
    parse_pose_label,
)

DOMAIN = "anyskill-domain sha256:0 (domain model of this humanoid, closed vocabulary — not CLIP)"


def _e2e(path, rates, latent_action=None, anchor_scale=None, prompts=("squat down", "bow"), llc="llc_laptop.pth",
         seed=0, early_termination=None, epochs=None):
    rows = []
    for prompt, rate in zip(prompts, rates, strict=True):
        row = {"prompt": prompt, "fact": "f", "model": DOMAIN, "after_fact_rate": rate, "after_fallen_rate": 0.5,
               "before_fact_rate": 0.0}
        if latent_action is not None:
            row.update(latent_action=latent_action, anchor_scale=anchor_scale)
        if early_termination is not None:
            row.update(early_termination=early_termination)
        if epochs is not None:
            row.update(epochs=epochs, num_envs=64)
        rows.append(row)
    rows.append({**rows[0], "model": "ViT-B-32/random", "after_fact_rate": 1.0})  # the random floor: not counted
    rows.append({**rows[0], "prompt": "arms down by the sides", "after_fact_rate": 1.0})  # an opposite: not counted
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "llc": llc, "settings": {"seed": seed}}))
    return path


@pytest.fixture
def results(tmp_path):
    r = tmp_path / "results"
    r.mkdir()
    (r / "llc_laptop_untrained_hlc_anchor_scales.csv").write_text(
        "# commit: x\nanchor_scale,free_survival,free_pose_spread_m,anchored_survival,anchored_pose_spread_m,"
        "anchored_previous_survival,anchored_previous_pose_spread_m\n0.3,0.0,0.18,1.0,0.11,0.34,0.13\n"
        "1.0,0.0,0.18,0.53,0.19,0.03,0.18\n")
    (r / "llc_hlc_pose_goals.csv").write_text(
        "goal_clip,controller,latent_action,pose_error_untrained_m,pose_error_trained_m,train_s\n"
        "a,tracking route (shipped),free,0.5,0.2,1\nb,tracking route (shipped),free,0.5,0.3,1\n"
        "a,tracking route (shipped),anchored,0.2,0.2,1\na,tracking route (shipped),anchored (σ 2),0.4,0.1,1\n"
        "a,CALM (previous),free,0.2,0.9,1\na,clip-latent student (previous),free,0.5,0.4,1\n")
    table = ("key,ours: fall rate\nkinematic,0\nours_no_et,{0}\nours_no_enhance,{0}\nours_videoclip,{1}\n"
             "ours_full,{1}\n,not run\n")
    (r / "table1.csv").write_text("# notebook: 07_table1\n" + table.format(1.0, 0.5))
    (r / "table1_anchored_0.3.csv").write_text(table.format(0.5, 0.0))
    (r / "table1_measured.csv").write_text("not,a,table\n")  # another file: ignored
    previous = r / "previous_controller"  # the controller the shipped one replaced: its own measurements
    previous.mkdir()
    (previous / "table1.csv").write_text(table.format(1.0, 1.0))
    return r


def test_the_study_gathers_each_measure_per_latent_action_and_sigma(results, tmp_path):
    runs = [_e2e(tmp_path / "free" / "e2e.json", [0.1, 0.3]),
            _e2e(tmp_path / "a" / "e2e.json", [0.9, 0.8], "anchored", 0.3)]
    gathered = gather_e2e(runs, results / "domain_e2e_latent_action.csv")
    assert len(gathered) == 8 and math.isnan(gathered["anchor_scale"].iloc[0])
    df = anchor_tradeoff(results)

    def value(measure, action, scale=math.nan, controller="tracking route (shipped)"):
        d = df[(df["measure"] == measure) & (df["latent_action"] == action) & (df["controller"] == controller)]
        d = d[d["anchor_scale"].isna()] if math.isnan(scale) else d[d["anchor_scale"] == scale]
        assert len(d) == 1, (measure, action, scale, d)
        return float(d["value"].iloc[0])

    assert value(UNTRAINED, "free") == 0.0 and value(UNTRAINED, "anchored", 1.0) == 0.53
    assert value(UNTRAINED, "anchored_previous", 0.3) == 0.34
    assert value(POSE, "free") == pytest.approx(0.25) and value(POSE, "anchored", 0.3) == 0.2  # CALM rows not mixed in
    assert value(POSE, "anchored", 2.0) == 0.1
    assert value(E2E_REACHED, "free") == 1 and value(E2E_REACHED, "anchored", 0.3) == 2  # floor and opposite left out
    assert value(E2E_FALLEN, "anchored", 0.3) == 0.5
    assert value(TABLE1_FALLS, "free") == 0.75 and value(TABLE1_FALLS, "anchored", 0.3) == 0.25
    assert set(df["source"]) >= {"table1.csv", "table1_anchored_0.3.csv", "domain_e2e_latent_action.csv"}
    previous = "clip-latent student (previous)"  # its own folder and pose rows, nothing of the shipped one's
    assert value(TABLE1_FALLS, "free", controller=previous) == 1.0 and value(POSE, "free", controller=previous) == 0.4
    assert set(df[df["controller"] == previous]["measure"]) == {POSE, TABLE1_FALLS}
    assert "previous_controller/table1.csv" in set(df["source"])


def test_pose_labels_name_the_action_and_its_sigma():
    assert parse_pose_label("anchored (σ 0.6)") == ("anchored", 0.6) and parse_pose_label("anchored") == ("anchored",
                                                                                                          0.3)
    action, scale = parse_pose_label("free")
    assert action == "free" and math.isnan(scale)
    with pytest.raises(ValueError, match="latent action label"):
        parse_pose_label("anchored σ=2")


def test_the_command_writes_the_table_and_the_figure(results, tmp_path, capsys):
    figure = tmp_path / "fig.png"
    run = _e2e(tmp_path / "a" / "e2e.json", [0.9, 0.8], "anchored", 1.0)
    assert main(["anchor-study", "--results", str(results), "--figure", str(figure), "--e2e", str(run)]) == 0
    table = pd.read_csv(results / "anchor_tradeoff.csv", comment="#")
    assert {UNTRAINED, POSE, E2E_REACHED, TABLE1_FALLS} <= set(table["measure"]) and figure.stat().st_size > 10_000
    assert "anchor_tradeoff.csv" in capsys.readouterr().out
    assert main(["anchor-study", "--results", str(results), "--e2e", str(tmp_path / "missing.json")]) != 0
    assert "no such e2e.json" in capsys.readouterr().err
    assert (results / "domain_e2e_latent_action.csv").is_file()  # the gathered runs are kept
    assert main(["anchor-study", "--results", str(tmp_path), "--figure", str(figure)]) != 0
    assert "none of the study" in capsys.readouterr().err


def test_seed_summary_counts_prompts_reached_per_controller_action_and_seed(tmp_path, capsys):
    runs = [_e2e(tmp_path / "a0" / "e2e.json", [0.9, 0.1], llc="robust.pth", seed=0),
            _e2e(tmp_path / "a1" / "e2e.json", [0.9, 0.8], llc="robust.pth", seed=1),
            _e2e(tmp_path / "b0" / "e2e.json", [0.0, 0.1], "anchored", 0.6, llc="clip.pth", seed=0)]
    falls_only = _e2e(tmp_path / "a2" / "e2e.json", [0.0, 0.0], llc="robust.pth", seed=0,
                      early_termination="falls-only")
    longer = _e2e(tmp_path / "a3" / "e2e.json", [0.9, 0.9], llc="robust.pth", seed=0, epochs=300)
    summary = e2e_seed_summary(gather_e2e([*runs, falls_only, longer], tmp_path / "seeds.csv"))
    # runs made before the early-termination option count as the paper's; another early termination, or another
    # training size, is its own row
    assert sorted(summary["early_termination"]) == ["falls-only", "paper", "paper", "paper"]
    assert summary[summary["early_termination"] == "falls-only"].iloc[0]["reached_per_seed"] == "0"
    assert summary[summary["epochs"] == 300].iloc[0]["reached_per_seed"] == "2"
    summary = summary[(summary["early_termination"] == "paper") & (summary["epochs"] == 60)]
    free = summary[summary["llc"] == "robust.pth"].iloc[0]
    assert free["latent_action"] == "free" and math.isnan(free["anchor_scale"]) and free["seeds"] == "0,1"
    assert free["reached_per_seed"] == "1/2" and free["reached_mean"] == 1.5 and free["fallen_mean"] == 0.5
    anchored = summary[summary["llc"] == "clip.pth"].iloc[0]
    assert anchored["anchor_scale"] == 0.6 and anchored["reached_per_seed"] == "0"
    results = tmp_path / "results"
    results.mkdir()
    (results / "table1.csv").write_text("key,ours: fall rate\nours_full,0.5\n")
    assert main(["anchor-study", "--results", str(results), "--figure", str(tmp_path / "f.png"), "--seeds",
                 *map(str, runs[:2]), f"replaced={runs[2]}"]) == 0
    assert (results / "domain_e2e_seeds_summary.csv").read_text().startswith("# notebook: anyskill anchor-study")
    assert set(pd.read_csv(results / "domain_e2e_seeds_summary.csv", comment="#")["llc"]) == {"robust.pth", "replaced"}
    assert "robust.pth" in capsys.readouterr().out
    # a later run is added, the earlier rows kept though their run folders are gone; a run given again replaces its rows
    (tmp_path / "a0" / "e2e.json").unlink()
    later = _e2e(tmp_path / "c0" / "e2e.json", [0.9, 0.9], llc="finetuned.pth", seed=0)
    assert main(["anchor-study", "--results", str(results), "--figure", str(tmp_path / "f.png"), "--keep", "--seeds",
                 str(later), str(runs[1])]) == 0
    rows = pd.read_csv(results / "domain_e2e_seeds.csv", comment="#")
    assert sorted(rows["run"].value_counts().items()) == sorted((str(r), 4) for r in (*runs, later))
    assert "kept_rows" in (results / "domain_e2e_seeds.csv").read_text().splitlines()[2]
    summary = pd.read_csv(results / "domain_e2e_seeds_summary.csv", comment="#")
    assert set(summary["llc"]) == {"robust.pth", "replaced", "finetuned.pth"}
    assert main(["anchor-study", "--results", str(results), "--keep"]) != 0
    assert "--keep only applies with --seeds" in capsys.readouterr().err

"""The notebooks run headlessly at the smoke scale under papermill and write their figures and tables."""

import json

import pytest

from anyskill.provenance import read_csv
from anyskill.reproduce import list_notebooks, run_notebook

pytestmark = pytest.mark.slow


def _names_scoring_model(recorded: str) -> bool:
    """A result names the model that scored it: with ``clip_weights`` left empty, pretrained CLIP when it is cached,
    else the domain model of this humanoid (closed vocabulary, not CLIP) — the description includes its hash."""
    from anyskill.domain import choose_clip_weights
    from anyskill.reward.clip_model import ClipSpec

    return ClipSpec(weights=choose_clip_weights("", "smoke")).description in recorded


KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
"""What JupyterLab writes for ipykernel's ``python3`` kernel; a notebook without it opens as modified."""
LANGUAGE_INFO_KEYS = {"name", "version", "mimetype", "codemirror_mode", "pygments_lexer", "nbconvert_exporter",
                      "file_extension"}
"""The keys of ipykernel's ``language_info`` (JupyterLab fills in whatever of it the file lacks)."""


def test_notebooks_are_committed_without_outputs_and_have_parameters():
    import nbformat

    for path in list_notebooks():
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.get("kernelspec") == KERNELSPEC, f"{path.name}: kernelspec metadata"
        info = nb.metadata.get("language_info", {})
        assert set(info) == LANGUAGE_INFO_KEYS and info["name"] == "python" and info["version"].startswith("3."), \
            f"{path.name}: complete python language_info metadata (JupyterLab fills in what is missing)"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
        assert all(f"{name} =" in tagged[0].source for name in ("scale", "output_root", "device")), path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: committed with outputs"
        opening = nb.cells[0]
        assert opening.cell_type == "markdown" and "$" in opening.source, f"{path.name}: opens with the paper's claim"


def test_reproduce_passes_the_scales_device_to_every_notebook(tmp_path, monkeypatch):
    import anyskill.reproduce as rep

    calls = []
    monkeypatch.setattr(rep, "run_notebook", lambda nb, out, scale, seed, extra: calls.append((nb.name, extra)))
    assert rep.reproduce("smoke", tmp_path, only=["01", "02"]) == 0
    assert calls == [(n.name, {"device": "cpu"}) for n in list_notebooks(["01", "02"])]
    calls.clear()
    assert rep.reproduce("paper", tmp_path, only=["03"], device="cuda:1") == 0
    assert calls == [("03_latent_space.ipynb", {"device": "cuda:1"})]


def test_notebook_01_motion_data(tmp_path):
    run_notebook(list_notebooks(["01"])[0], tmp_path, scale="smoke")
    df, meta = read_csv(tmp_path / "results" / "01_dataset.csv")
    assert len(df) >= 18 and {"name", "category", "duration_s", "weight", "stance_sole_mean_m"} <= set(df.columns)
    assert meta["notebook"] == "01_motion_data" and meta["commit"] != "unknown"
    for name in ("01_dataset_overview", "01_ground_contact", "01_poses", "01_retargeting"):
        png = tmp_path / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000
        assert json.loads(png.with_suffix(".json").read_text())["seed"] == 0
    assert list((tmp_path / "figures").glob("01_*.gif"))
    # the measured time of the executed notebook, as the README's compute table quotes it
    from anyskill.cli import main

    assert main(["notebook-times", str(tmp_path), "--results", str(tmp_path / "times.json")]) == 0
    row, = json.loads((tmp_path / "times.json").read_text())["notebooks"]
    assert row["status"] == "finished" and 0 < row["wall_s"] < 600 and row["parameters"]["scale"] == "smoke"
    assert row["slowest_cells"] and sum(c["seconds"] for c in row["slowest_cells"]) <= row["wall_s"]
    assert main(["notebook-times", str(tmp_path / "nothing")]) == 2


def test_notebook_02_low_level_training(tmp_path):
    run_notebook(list_notebooks(["02"])[0], tmp_path, scale="smoke")
    df, meta = read_csv(tmp_path / "results" / "02_llc_eval.csv")
    assert set(df["controller"]) == {"trained", "untrained"} and df["survival_s"].gt(0).all()
    assert "evaluated_checkpoint" in meta["config"]
    assert (tmp_path / "figures" / "02_training_curves_smoke.png").stat().st_size > 10_000
    skills, _ = read_csv(tmp_path / "results" / "02_llc_skills.csv")
    assert len(skills) == 18 and {"survived", "own_distance_m", "identified_as"} <= set(skills.columns)
    assert (tmp_path / "figures" / "02_llc_skills.png").stat().st_size > 10_000
    assert (tmp_path / "runs" / "llc_smoke").is_dir()


def test_notebook_03_latent_space(tmp_path):
    run_notebook(list_notebooks(["03"])[0], tmp_path, scale="smoke")
    stats = json.loads((tmp_path / "results" / "03_latent_stats.json").read_text())
    assert stats["within_clip_cosine"] > stats["between_clip_cosine"]
    for name in ("03_latent_map", "03_latent_similarity", "03_atomic_actions", "03_latent_interpolation"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000


def test_notebook_04_high_level_training(tmp_path):
    """Smoke scale: default CLIP weights, pose goal without CLIP."""
    run_notebook(list_notebooks(["04"])[0], tmp_path, scale="smoke")
    df, meta = read_csv(tmp_path / "results" / "04_pose_goal.csv")
    assert list(df["policy"]) == ["untrained", "trained"] and df["mean_pose_error_m"].gt(0).all()
    proj = json.loads((tmp_path / "results" / "04_projection.json").read_text())
    assert proj["speedup"]["speedup"] > 1 and _names_scoring_model(proj["provenance"]["clip_weights"])
    _, text_meta = read_csv(tmp_path / "results" / "04_text_rollout.csv")
    assert _names_scoring_model(text_meta["clip_weights"])
    for name in ("04_pose_goal_curves", "04_projection_fit", "04_text_goal_curves", "04_text_filmstrip",
                 "04_anchored_action", "04_anchor_tradeoff", "04_early_termination"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000


def test_notebook_05_text_enhancement(tmp_path):
    """Smoke scale: offline enhancer, default CLIP weights, the paper's three Fig. 6 prompts."""
    run_notebook(list_notebooks(["05"])[0], tmp_path, scale="smoke")
    prompts, meta = read_csv(tmp_path / "results" / "05_enhanced_prompts.csv")
    assert list(prompts["original"]) == ["wave hi", "Waltz dance", "kick"]
    assert prompts["text"][0] == "raised arm bent at the elbow" and set(prompts["model"]) == {"offline"}
    config = json.loads(meta["config"])
    assert "offline" in config["enhancer"] and config["llm_model"] == "offline"
    assert _names_scoring_model(meta["clip_weights"])
    table, _ = read_csv(tmp_path / "results" / "05_enhancement.csv")
    assert len(table) == 6 and set(table["policy"]) == {"original", "enhanced"}
    assert table[["similarity_to_original", "similarity_to_enhanced"]].abs().le(1).all().all()
    general, _ = read_csv(tmp_path / "results" / "05_general_policy.csv")
    assert set(general["policy"]) == {"untrained", "trained"} and len(general) == 6
    for name in ("05_enhancement_curves", "05_enhancement_filmstrips", "05_general_policy"):
        png = tmp_path / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000
        assert json.loads(png.with_suffix(".json").read_text())["config"]["llm_model"] == "offline"


def test_notebook_06_interaction_scenes(tmp_path):
    """Smoke scale: the scripted physics checks (meaningful), HLC training and rollouts in both scenes with the default
    CLIP weights."""
    run_notebook(list_notebooks(["06"])[0], tmp_path, scale="smoke")
    checks, meta = read_csv(tmp_path / "results" / "06_physics_checks.csv")
    checks = checks.set_index("check")
    kick, push = checks.loc["kick replay"], checks.loc["door push"]
    assert kick["first_contact_body"] == "right_foot" and kick["ball_displacement_m"] > 0.5
    assert push["door_final_angle_deg"] == pytest.approx(push["door_predicted_rest_deg"], rel=0.01)
    assert checks.loc["standing (ball)", "ball_displacement_m"] < 1e-3
    assert checks.loc["standing (door)", "door_max_angle_deg"] < 1e-2
    assert json.loads(meta["config"])["prompts"] == {"ball": "kick the ball", "door": "raise arms, open the door"}
    table, table_meta = read_csv(tmp_path / "results" / "06_interaction.csv")
    assert len(table) == 4 and set(zip(table["scene"], table["policy"], strict=True)) == {
        (s, p) for s in ("ball", "door") for p in ("untrained", "trained")}
    assert {"ball_displacement_m", "ball_peak_speed_m_s", "door_max_angle_deg", "first_contact_s"} <= set(table.columns)
    assert _names_scoring_model(table_meta["clip_weights"])
    for name in ("06_scene_views", "06_physics_checks", "06_kick_replay_filmstrip", "06_ball_training",
                 "06_door_training", "06_rollout_objects", "06_ball_filmstrip", "06_door_filmstrip"):
        png = tmp_path / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000
        assert json.loads(png.with_suffix(".json").read_text())["config"]["scale"] == "smoke"


def _check_table(tmp_path, number: int, rows: set[str], notebook: str):
    """The table's CSV (provenance header, paper and measured columns) and its markdown (random-weights note)."""
    table, meta = read_csv(tmp_path / "results" / f"table{number}.csv")
    assert _names_scoring_model(meta["clip_weights"]) and json.loads(meta["config"])["scale"] == "smoke"
    columns = {"paper: Success", "paper: CLIP_S", "ours: CLIP_S", "ours: foot sliding (m/s)", "ours: Success (raters)"}
    assert rows <= set(table["method"]) and columns <= set(table.columns)
    assert set(table["ours: Success (raters)"]) <= {"not collected", "not run"}
    md = (tmp_path / "results" / f"table{number}.md").read_text()
    assert _names_scoring_model(md) and ("not CLIP" in md or "RANDOM CLIP WEIGHTS" in md or "laion" in md)
    for png in (tmp_path / "figures").glob(f"{notebook}_*.png"):
        assert png.stat().st_size > 10_000
        assert json.loads(png.with_suffix(".json").read_text())["config"]["scale"] == "smoke"
    return table


def test_notebook_07_table1(tmp_path):
    """Smoke scale, default CLIP weights: every Table 1 method on one prompt."""
    run_notebook(list_notebooks(["07"])[0], tmp_path, scale="smoke")
    table = _check_table(tmp_path, 1, {"Ours (full)", "Ours (w/o ET)", "AvatarCLIP [11]"}, "07").set_index("method")
    assert table.loc["Ours (full)", "paper: CLIP_S"] == 24.18
    assert table.loc["AvatarCLIP [11]", "ours: CLIP_S"] == "not run"
    kinematic = table[table.index.str.contains("not the original")]
    assert len(kinematic) == 1 and float(kinematic["ours: max penetration (m)"].iloc[0]) >= 0
    assert len(list((tmp_path / "figures").glob("07_*.png"))) == 2


def test_notebook_08_table2(tmp_path):
    """Smoke scale, default CLIP weights: Ours (full) in the ball and the door scene, with interaction metrics."""
    run_notebook(list_notebooks(["08"])[0], tmp_path, scale="smoke")
    table = _check_table(tmp_path, 2, {"Interaction w. object (ball)", "Interaction w. scene (door)"}, "08")
    assert {"ours: ball displacement (m)", "ours: door max angle (deg)"} <= set(table.columns)
    assert len(list((tmp_path / "figures").glob("08_*.png"))) == 2


def test_notebook_09_table3(tmp_path):
    """Smoke scale, default CLIP weights: the four reward variants of Table 3 and ours on one prompt."""
    run_notebook(list_notebooks(["09"])[0], tmp_path, scale="smoke")
    table = _check_table(tmp_path, 3, {"Ours (full)", "CLIP-S (2.5 max(cos, 0))", "+ vel. rew. (ASE-style)"}, "09")
    assert table.set_index("method").loc["Ours (full)", "paper row"] == "Ours" and len(table) == 5
    assert len(list((tmp_path / "figures").glob("09_*.png"))) == 2


def test_notebook_10_prompt_playground(tmp_path):
    """Smoke scale, one epoch on four humanoids: the run from the parameters (offline enhancer, default CLIP weights)
    writes its figures and results; the widgets are built, nothing trained through them."""
    run_notebook(list_notebooks(["10"])[0], tmp_path, scale="smoke", extra={"epochs": 1, "num_envs": 4})
    curve, meta = read_csv(tmp_path / "results" / "10_playground_rollout.csv")
    assert len(curve) > 30 and curve["similarity"].abs().le(1).all() and _names_scoring_model(meta["clip_weights"])
    summary = json.loads((tmp_path / "results" / "10_playground.json").read_text())
    assert summary["enhancement"]["text"] == "raised arm bent at the elbow" and summary["epochs"] == 1
    assert "not CLIP" in summary["similarity_meaning"] or "meaningless" in summary["similarity_meaning"] or \
        "laion" in meta["clip_weights"]
    assert summary["provenance"]["config"]["request"]["prompt"] == "wave hi"
    for name in ("10_playground_curves", "10_playground_filmstrip"):
        png = tmp_path / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000
        assert _names_scoring_model(json.loads(png.with_suffix(".json").read_text())["clip_weights"])
    assert (tmp_path / "figures" / "10_playground_rollout.gif").read_bytes()[:4] == b"GIF8"

"""``anyskill gpu-ingest OUT_DIR``: turn the outputs of one ``scripts/gpu_check.sh`` run (``anyskill gpu-check``)
into committed results.

    .venv/bin/anyskill gpu-ingest OUT_DIR            # then review `git diff` and commit

What it writes (every target a parameter, so the tests ingest into temporary copies):

* ``results/bench.json``: the run's Warp rows replace earlier rows of the same (backend, device); the CPU rows and
  their provenance stay; the GPU run's provenance and machine go under ``runs["<backend>/<device>"]``;
* ``results/bench_reward.json``: the GPU measurement under ``by_device["cuda:0"]`` beside the CPU one;
* ``results/bench_llc.json``: LLC training samples/s on the GPU per route under ``gpu_training``, with the CPU rate;
* ``results/gpu_check.json``: the run's summary (statuses, numbers, goals; nvidia-smi's report);
* ``results/llc_gpu_<route>_{skills.csv,skills.json,eval.csv}`` and a model card
  ``anyskill/checkpoints/llc_gpu_<route>.md`` for each GPU-trained controller that was evaluated, beside the laptop
  one. A controller that beats the shipped default on the held-out metrics (:func:`beats`) is installed as
  ``anyskill/checkpoints/llc_paper.pth`` (the name :mod:`anyskill.llc.shipped` prefers) with its card as
  ``llc_paper.md``; otherwise nothing is shipped and the card says why;
* ``README.md``: the rows between ``<!-- gpu-check:begin -->`` and ``<!-- gpu-check:end -->`` and the status row
  ``| GPU verification run |``.

A dry run's outputs are refused unless ``--allow-dry-run`` (the tests); they are CPU numbers at toy sizes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from anyskill.gpu.files import join_parts, parts_of, unbundle
from anyskill.provenance import REPO_ROOT

ROUTES = {"llc_default": ("eval_default", "default route (tracking + distillation)"),
          "llc_calm": ("eval_calm", "CALM, `paper` scale")}
BEGIN, END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"
STATUS_ROW = "| GPU verification run |"
SURVIVAL_SLACK = 0.05


def beats(candidate: dict[str, Any], shipped: dict[str, Any]) -> tuple[bool, str]:
    """Whether held-out skill summary ``candidate`` beats ``shipped`` (both ``llc_skills.json`` summaries): the same
    evaluation (latent and idle seconds, clips), more skills identified (top-1), survival no more than 5 points lower,
    and the idle latent standing if the shipped one's does. Returns (verdict, reason)."""
    for key in ("seconds", "idle_seconds", "clips"):
        if candidate.get(key) != shipped.get(key):
            return False, f"not comparable: {key} {candidate.get(key)} vs the shipped {shipped.get(key)}"
    if candidate["top1_accuracy"] <= shipped["top1_accuracy"]:
        return False, (f"skill identification {candidate['top1_accuracy']:.0%} is not above the shipped "
                       f"{shipped['top1_accuracy']:.0%}")
    if candidate["survival_rate"] < shipped["survival_rate"] - SURVIVAL_SLACK:
        return False, (f"survival {candidate['survival_rate']:.0%} is more than {SURVIVAL_SLACK:.0%} below the "
                       f"shipped {shipped['survival_rate']:.0%}")
    if shipped.get("idle_survived") and not candidate.get("idle_survived"):
        return False, "the idle latent falls (the shipped one stands)"
    return True, (f"identifies {candidate['top1_accuracy']:.0%} of the skills (shipped "
                  f"{shipped['top1_accuracy']:.0%}), survival {candidate['survival_rate']:.0%} (shipped "
                  f"{shipped['survival_rate']:.0%})")


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=float) + "\n")


def _steps(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in summary["steps"]}


def ingest_bench_env(bundle_dir: Path, results: Path) -> bool:
    src = bundle_dir / "bench.json"
    if not src.is_file():
        return False
    new = _read(src)
    target = results / "bench.json"
    old = _read(target) if target.is_file() else {"results": []}
    keys = {(r["backend"], r["device"]) for r in new["results"]}
    old["results"] = [r for r in old["results"] if (r["backend"], r["device"]) not in keys] + new["results"]
    runs = old.setdefault("runs", {})
    for backend, device in sorted(keys):
        runs[f"{backend}/{device}"] = {"provenance": new.get("provenance"), "machine_info": new.get("machine_info")}
    _write(target, old)
    return True


def ingest_bench_reward(bundle_dir: Path, results: Path) -> bool:
    src = bundle_dir / "bench_reward.json"
    if not src.is_file():
        return False
    new = _read(src)
    target = results / "bench_reward.json"
    old = _read(target) if target.is_file() else {}
    old.setdefault("by_device", {})[new["results"]["clip_device"]] = new
    _write(target, old)
    return True


def ingest_llc_rates(summary: dict[str, Any], results: Path) -> dict[str, Any]:
    steps, goals = _steps(summary), summary.get("goals", {})
    rows = {}
    for name in ROUTES:
        numbers = steps.get(name, {}).get("numbers", {})
        if steps.get(name, {}).get("status") == "ok" and numbers.get("samples_per_s"):
            device = "cpu" if summary["dry_run"] else "cuda:0"
            rows[name] = {**{k: numbers.get(k) for k in ("scale", "num_envs", "epochs", "samples", "wall_time_s",
                                                           "samples_per_s")},
                          "device": device, "gpu": summary["machine"].get("gpu"), "commit": summary["commit"],
                          "started": summary["started"],
                          "ratio_to_cpu": goals.get(f"{name}_samples_per_s", {}).get("ratio_to_cpu")}
    if rows:
        target = results / "bench_llc.json"
        old = _read(target) if target.is_file() else {}
        old.setdefault("gpu_training", {}).update(rows)
        _write(target, old)
    return rows


def model_card(route: str, what: str, summary: dict[str, Any], skills: dict[str, Any], shipped: dict[str, Any],
               shipped_name: str, verdict: tuple[bool, str], ckpt_name: str) -> str:
    """The Markdown model card of one GPU-trained controller."""
    train = _steps(summary)[route]["numbers"]
    s = skills["summary"]
    short = route.removeprefix("llc_")
    rows = [("latents that stay up from standing", "survival_rate", "{:.0%}"),
            ("skill identification top-1", "top1_accuracy", "{:.0%}"),
            ("mean own-clip pose distance (m)", "mean_own_distance_m", "{:.3f}"),
            ("idle latent stands", "idle_survived", "{}")]
    table = "\n".join(f"| {label} | {fmt.format(s.get(k))} | {fmt.format(shipped.get(k))} |" for label, k, fmt in rows)
    packed = train.get("packed", {})
    epochs = f", {train['epochs']} epochs of {train.get('num_envs')} envs" if train.get("epochs") else ""
    if train.get("stages"):
        epochs += "; " + ", ".join(f"{k} {v['samples']} samples" for k, v in train["stages"].items())
    shipped_line = (f"**Shipped as the default** (`anyskill/checkpoints/{ckpt_name}`): {verdict[1]}." if verdict[0]
                    else f"**Not shipped**: {verdict[1]}. The checkpoint is `{route}.pth` of the GPU run's outputs.")
    return f"""# Model card: GPU-trained low-level controller — {what}

Trained by `scripts/gpu_check.sh` ({'DRY RUN on the CPU, toy sizes' if summary['dry_run'] else 'GPU run'}) on
{summary['machine'].get('gpu') or 'no GPU'}, commit `{summary['commit']}`, started {summary['started']}:
{train.get('samples')} samples in {train.get('wall_time_s')} s ({train.get('samples_per_s')} samples/s{epochs})
under a fixed wall-clock budget of {summary['train_seconds'].get(route)} s, `{train.get('scale')}` scale. Weights
stored as {packed.get('dtype', 'float32')} ({packed.get('bytes', 0) / 2**20:.1f} MiB).

{shipped_line}

## Held-out skills (`anyskill eval-llc`), beside the shipped `{shipped_name}`
Every clip's latent held {s.get('seconds')} s from standing, the idle latent {s.get('idle_seconds')} s
({s.get('clips')} clips; chance {s.get('chance', 0):.0%}). Files: `results/llc_gpu_{short}_skills.csv`,
`results/llc_gpu_{short}_eval.csv`.

| metric | this controller | shipped |
|---|---|---|
{table}

Shipped as the default only if it identifies more skills than the shipped one, survives no more than
{SURVIVAL_SLACK:.0%} less often and keeps the idle latent standing (`anyskill.gpu.ingest.beats`).
"""


def ingest_controllers(summary: dict[str, Any], bundle_dir: Path, out_dir: Path, results: Path, checkpoints: Path,
                       shipped_skills: Path) -> dict[str, Any]:
    steps = _steps(summary)
    shipped = _read(shipped_skills)["summary"]
    shipped_name = shipped_skills.name.removesuffix("_skills.json") + ".pth"
    report: dict[str, Any] = {}
    winners = []
    for route, (eval_name, what) in ROUTES.items():
        if steps.get(eval_name, {}).get("status") != "ok" or not parts_of(out_dir / f"{route}.pth"):
            continue
        short = route.removeprefix("llc_")
        skills = _read(bundle_dir / eval_name / "llc_skills.json")
        verdict = beats(skills["summary"], shipped)
        for src, dst in (("llc_skills.csv", "skills.csv"), ("llc_skills.json", "skills.json"),
                         ("llc_eval.csv", "eval.csv")):
            if (bundle_dir / eval_name / src).is_file():
                shutil.copyfile(bundle_dir / eval_name / src, results / f"llc_gpu_{short}_{dst}")
        card = model_card(route, what, summary, skills, shipped, shipped_name, verdict, "llc_paper.pth")
        (checkpoints / f"llc_gpu_{short}.md").write_text(card)
        report[route] = {"beats_shipped": verdict[0], "reason": verdict[1], "card": f"llc_gpu_{short}.md"}
        if verdict[0]:
            winners.append((skills["summary"]["top1_accuracy"], route, card))
    if winners:
        _, route, card = max(winners)
        join_parts(out_dir / f"{route}.pth", checkpoints / "llc_paper.pth")
        (checkpoints / "llc_paper.md").write_text(card)
        report["shipped"] = route
    return report


def measured_text(name: str, n: dict[str, Any], clip_weights: str) -> str:
    """One README cell: what step ``name`` measured (``n``: its key numbers)."""
    if name == "warp_parity":
        return f"{n.get('passed')} passed, {n.get('failures')} failed, {n.get('skipped')} skipped"
    if name == "bench_env":
        return (f"env/raw {n.get('env_over_backend_at_largest')}x at {n.get('largest_worlds')} worlds; best "
                f"{n.get('env_physics_steps_per_s_best', 0):,.0f} env physics steps/s")
    if name == "bench_reward":
        return (f"{n.get('render_and_encode_fps')} rendered+encoded frames/s ({n.get('clip_dtype')}), projection "
                f"{n.get('projection_fps', 0):,.0f} frames/s")
    if name in ROUTES:
        return f"{n.get('samples')} samples in {n.get('wall_time_s')} s = {n.get('samples_per_s')} samples/s"
    if name.startswith("eval_"):
        k = n["skills"]
        return (f"stay up {k['survival_rate']:.0%}, top-1 {k['top1_accuracy']:.0%}, idle "
                f"{'stands' if k['idle_survived'] else 'falls'}")
    text = f"{n.get('hlc_steps')} HLC steps in {n.get('train_wall_s')} s"
    return text + (f" (CLIP {clip_weights})" if name == "hlc_text" else "")


def readme_rows(summary: dict[str, Any]) -> tuple[str, str]:
    """(the table between the README markers, the status row) from a run's summary."""
    goals = summary.get("goals", {})
    where = (f"{summary['machine'].get('gpu') or 'CPU (dry run)'}, {summary['started'][:10]}, commit "
             f"`{summary['commit'][:10]}`")
    lines = ["| step | status | wall (s) | measured |", "|---|---|---|---|"]
    for s in summary["steps"]:
        n = s.get("numbers", {})
        text = measured_text(s["name"], n, summary.get("clip_weights_text", "")) if n else s.get("reason", "")
        lines.append(f"| `{s['name']}` | {s['status']} | {s.get('wall_s', 0):.0f} | {text} |")
    met = [f"{k} {'met' if v.get('met') else 'not met'} ({v.get('measured')})" for k, v in goals.items() if "met" in v]
    table = (f"Last run: {where}; {summary['wall_s']} s in all.\n\n" + "\n".join(lines)
             + ("\n\nGoals: " + "; ".join(met) + "." if met else ""))
    ok = sum(s["status"] == "ok" for s in summary["steps"])
    status = (f"{STATUS_ROW} {'dry run only' if summary['dry_run'] else 'ran'} on {where}: {ok} of "
              f"{len(summary['steps'])} steps ok — table in \"GPU verification\" |")
    return table, status


def ingest_readme(summary: dict[str, Any], readme: Path) -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} markers")
    table, status = readme_rows(summary)
    text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda m: f"{BEGIN}\n{table}\n{END}", text, flags=re.S)
    lines = [status if line.startswith(STATUS_ROW) else line for line in text.splitlines()]
    readme.write_text("\n".join(lines) + "\n")


def ingest(out_dir: Path, results: Path, checkpoints: Path, readme: Path, shipped_skills: Path,
           allow_dry_run: bool = False) -> dict[str, Any]:
    """Ingest ``out_dir``; returns what was written."""
    summary = _read(out_dir / "summary.json")
    if summary.get("kind") != "gpu_check":
        raise SystemExit(f"{out_dir}/summary.json is not a gpu_check summary")
    if summary["dry_run"] and not allow_dry_run:
        raise SystemExit(f"{out_dir} holds a dry run (CPU, toy sizes): not ingested (--allow-dry-run for tests)")
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = Path(tmp)
        if (out_dir / "results.tar.gz").is_file():
            unbundle(out_dir / "results.tar.gz", bundle_dir)
        done: dict[str, Any] = {"bench.json": ingest_bench_env(bundle_dir, results),
                                "bench_reward.json": ingest_bench_reward(bundle_dir, results),
                                "bench_llc.json": ingest_llc_rates(summary, results)}
        done["controllers"] = ingest_controllers(summary, bundle_dir, out_dir, results, checkpoints, shipped_skills)
    record = {k: v for k, v in summary.items() if k != "files"}
    _write(results / "gpu_check.json", record)
    ingest_readme(summary, readme)
    done["readme"] = str(readme)
    return done


def add_gpu_ingest_command(sub) -> None:
    """Register ``gpu-ingest`` on the ``anyskill`` parser's sub-parsers."""
    p = sub.add_parser("gpu-ingest", help="turn the outputs of a gpu-check run into committed results (benchmark "
                       "rows, model cards, the README's table)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the OUT_DIR of a scripts/gpu_check.sh run")
    p.add_argument("--results", type=Path, default=REPO_ROOT / "results")
    p.add_argument("--checkpoints", type=Path, default=REPO_ROOT / "anyskill" / "checkpoints")
    p.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    p.add_argument("--shipped-skills", type=Path, default=REPO_ROOT / "results" / "llc_laptop_skills.json",
                   help="held-out skill summary of the shipped default controller")
    p.add_argument("--allow-dry-run", action="store_true", help="ingest a dry run's CPU numbers too (the tests)")
    p.set_defaults(func=_ingest)


def _ingest(args: argparse.Namespace) -> int:
    done = ingest(args.out, args.results, args.checkpoints, args.readme, args.shipped_skills, args.allow_dry_run)
    print(json.dumps(done, indent=1, default=str))
    return 0

"""Re-measure run3's policies on upright frames only (head above the fallen threshold): the same deterministic
rollouts as measure_policy (8 envs x 4 s, seed 100). The policy observes only the humanoid, so the goal used here
(domain model, the row's prompt) changes only the similarity, not the actions. Writes runs/domain_e2e/upright3.json."""
import json
from pathlib import Path

import torch

from anyskill.eval.domain_e2e import E2E_PROMPTS, QUANTITY, RecordingGoal, rollout_facts
from anyskill.hlc.clip_goals import TextGoal
from anyskill.hlc.rollout import evaluate
from anyskill.reward.clip_model import ClipModel, ClipSpec

torch.set_num_threads(1)
llc = "anyskill/checkpoints/llc_laptop.pth"
out = Path("runs/domain_e2e/out_llc")
domain = ClipModel(ClipSpec(weights="anyskill-domain"))
prompts = list(E2E_PROMPTS)
res = []
for line in Path("runs/domain_e2e/run3_rows.jsonl").read_text().splitlines():
    r = json.loads(line)
    kind = "domain" if "not CLIP" in r["model"] else "random"
    d = out / (f"{kind}_{prompts.index(r['prompt'])}" if r["prompt"] in prompts else "opposite_0")
    goal = TextGoal(domain, None, r["prompt"], reward_source="projection", projection=domain.model.projection)
    row = {"prompt": r["prompt"], "kind": kind, "dir": str(d)}
    for tag, ck in (("before", d / "initial.pth"), ("after", d / "hlc.pth")):
        rec = RecordingGoal(goal)
        with torch.no_grad():
            evaluate(ck, llc, rec, seconds=4.0, num_envs=8, seed=100)
        f, q = rollout_facts(torch.stack(rec.body_pos[1:]), torch.stack(rec.body_rot[1:]), 1.0 / 30.0)
        up = ~f["fallen"]
        row[f"{tag}_fallen_rate"] = round(float(f["fallen"].float().mean()), 4)
        row[f"{tag}_fact_rate"] = round(float(f[r["fact"]].float().mean()), 4)
        row[f"{tag}_upright_fact_rate"] = round(float(f[r["fact"]][up].float().mean()), 4) if up.any() else None
        qq = q[QUANTITY[r["fact"]]]
        row[f"{tag}_upright_quantity"] = round(float(qq[up].mean()), 4) if up.any() else None
    print(row, flush=True)
    res.append(row)
Path("runs/domain_e2e/upright3.json").write_text(json.dumps(res, indent=1))

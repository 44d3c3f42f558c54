"""Write anyskill_domain_e2e.json (+ card) from the llc_laptop rows of scripts/domain_e2e/run.py (then upright.py);
the CALM record is kept under "previous_controller" and summarised in a note.
Usage: scripts/domain_e2e/merge.py [extra note ...]"""
import json
import sys
from pathlib import Path

from anyskill.eval.domain_build import write_model_card
from anyskill.eval.domain_e2e import E2ESettings

E2E = Path("anyskill/checkpoints/anyskill_domain_e2e.json")
old = json.loads(E2E.read_text())
if "previous_controller" in old:  # re-merge: keep the CALM record as it was
    calm = old["previous_controller"]
else:
    calm = old
rows = [json.loads(x) for x in Path("runs/domain_e2e/run3_rows.jsonl").read_text().splitlines() if x.strip()]
# the sizes are the rows' own (run.py ENVS EPOCHS ...; lr as run.py sets it); all rows must share them
s = E2ESettings(num_envs=rows[0]["num_envs"], epochs=rows[0]["epochs"], learning_rate=1e-3)
plain = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.__dict__.items()}
if not all(r["llc"] == "llc_laptop.pth" and r["num_envs"] == s.num_envs and r["epochs"] == s.epochs for r in rows):
    sys.exit("runs/domain_e2e/run3_rows.jsonl mixes controllers or sizes: rerun scripts/domain_e2e/run.py into a fresh "
             "rows file")


def label(r):
    return "domain" if "not CLIP" in r["model"] else "random"


def upright_notes():
    up = json.loads(Path("runs/domain_e2e/upright3.json").read_text())
    bits = [f"{u['prompt']} ({u['kind']}): fallen {u['before_fallen_rate']:.3f} -> {u['after_fallen_rate']:.3f}, "
            f"rate on upright frames {u['before_upright_fact_rate']:.3f} -> {u['after_upright_fact_rate']:.3f}, "
            f"quantity on upright frames {u['before_upright_quantity']:.3f} -> {u['after_upright_quantity']:.3f}"
            for u in up]
    b = up[0]
    return [f"the untrained policy (random latents) falls: {b['before_fallen_rate']:.3f} of the 'before' frames are "
            "fallen, so the table's rates and quantities mix fallen frames in; the same rollouts restricted to "
            "upright frames (scripts/domain_e2e/upright.py, identical rates to the table): " + "; ".join(bits)]


calm_bits = []
for r in calm["rows"]:
    if r.get("reward_source", "projection") != "projection":
        continue
    calm_bits.append(f"{r['prompt']} ({label(r)}, {r['num_envs']}x{r['epochs']}): rate {r['before_fact_rate']:.3f} -> "
                     f"{r['after_fact_rate']:.3f}, quantity {r['before_quantity']:.3f} -> {r['after_quantity']:.3f}")
notes = [
    "controller: `llc_laptop.pth`, the shipped distilled tracking student (anyskill/checkpoints/llc_laptop.md); "
    f"every row {s.num_envs} envs x {s.epochs} epochs, lr {s.learning_rate}, training seed {s.seed}, evaluation "
    f"seed 100 ({s.eval_envs} envs x {s.eval_seconds} s); made by scripts/domain_e2e/run.py, merged by "
    "scripts/domain_e2e/merge.py",
    "the random ViT-B/32 floor uses a state projection fitted the same way to its features of 200 training frames",
    "the 'arms down by the sides' row is the opposite prompt of 'raise both arms above the head', measured on the same "
    "fact (both_arms_up) and quantity (hands over head), which it should lower",
] + upright_notes() + sys.argv[1:] + [
    "previous table, controller `llc_calm_laptop.pth` (CALM; kept in this JSON under `previous_controller` with its "
    "settings, lr 1e-3, seed 0): " + "; ".join(calm_bits),
] + [n for n in calm["notes"] if n.startswith("With a controller that can reach") or n.startswith("Where the reward")]
record = {"rows": rows, "settings": plain, "llc": "llc_laptop.pth", "domain_model": rows[0]["model"],
          "notes": notes, "previous_controller": calm}
E2E.write_text(json.dumps(record, indent=1))
print(write_model_card("anyskill/checkpoints/anyskill_domain_metrics.json"))
for r in rows:
    print(f"{r['prompt'][:30]:30s} {label(r):7s} rate {r['before_fact_rate']:.3f}->{r['after_fact_rate']:.3f} "
          f"q {r['before_quantity']:.3f}->{r['after_quantity']:.3f} sim {r['before_similarity']:.3f}->"
          f"{r['after_similarity']:.3f} fallen {r['before_fallen_rate']:.3f}->{r['after_fallen_rate']:.3f} "
          f"train {r['train_s']} wall {r['wall_s']}")

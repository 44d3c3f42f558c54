"""E2E rows with the tracking controller llc_laptop.pth (issue 20): domain model on the 5 prompts (+ random floor,
+ opposite prompt). Usage: scripts/domain_e2e/run.py ENVS EPOCHS PART  (PART: domain | random | opposite | all);
rows appended to runs/domain_e2e/run3_rows.jsonl."""
import json
import sys
import time
from pathlib import Path

import torch


def main():
    torch.set_num_threads(1)
    from anyskill.eval.domain_e2e import E2E_PROMPTS, OPPOSITES, E2ESettings, fit_random_projection, train_and_measure
    from anyskill.reward.clip_model import ClipModel, ClipSpec

    envs, epochs, part = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    only = sys.argv[4:]  # optional prompt indices
    llc = "anyskill/checkpoints/llc_laptop.pth"
    out = Path("runs/domain_e2e/out_llc")
    s = E2ESettings(num_envs=envs, epochs=epochs, learning_rate=1e-3)
    rows_file = Path("runs/domain_e2e/run3_rows.jsonl")
    domain = ClipModel(ClipSpec(weights="anyskill-domain"))

    def emit(row, t0):
        row["llc"] = Path(llc).name
        row["seed"] = s.seed
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        print(row, flush=True)
        with rows_file.open("a") as f:
            f.write(json.dumps(row) + "\n")

    items = list(E2E_PROMPTS.items())
    idx = [int(i) for i in only] if only else range(len(items))
    if part in ("domain", "all"):
        for i in idx:
            t0 = time.perf_counter()
            emit(train_and_measure(domain, domain.model.projection, *items[i], llc, out / f"domain_{i}", s), t0)
    if part in ("opposite", "all"):
        for prompt, opp in OPPOSITES.items():
            t0 = time.perf_counter()
            emit(train_and_measure(domain, domain.model.projection, opp, E2E_PROMPTS[prompt], llc,
                                   out / "opposite_0", s), t0)
    if part in ("random", "all"):
        from anyskill.hlc.domain_data import DomainData

        data = DomainData.load("runs/domain_data/data.pt")
        pick = (~data.heldout).nonzero().flatten()[torch.randperm(int((~data.heldout).sum()),
                                                                   generator=torch.Generator().manual_seed(0))[:200]]
        rnd = ClipModel(ClipSpec(weights="random"))
        t1 = time.perf_counter()
        proj, cos = fit_random_projection(rnd, data.frames[pick], data.body_pos[pick])
        print("random projection", cos, time.perf_counter() - t1, flush=True)
        for i in idx:
            t0 = time.perf_counter()
            emit(train_and_measure(rnd, proj, *items[i], llc, out / f"random_{i}", s), t0)
    print("done", flush=True)


if __name__ == "__main__":
    main()

"""``anyskill train-domain-clip`` and ``anyskill domain-e2e``: the domain text–image model from the command line."""

from __future__ import annotations

import argparse
import sys

DEFAULT_DATA = "runs/domain_data/data.pt"


def _train_domain_clip(args: argparse.Namespace) -> int:
    import torch

    from anyskill.config.domain import DomainTrainSettings
    from anyskill.domain.build import build_domain_model
    from anyskill.domain.model import DOMAIN_LABEL

    torch.set_num_threads(args.threads)
    settings = DomainTrainSettings(steps=args.steps, seed=args.seed, time_budget_s=args.time_budget)
    m = build_domain_model(args.data, args.out, llc_checkpoint=args.llc, regenerate=args.regenerate,
                           settings=settings, rollout_frames=args.rollout_frames, random_floor=not args.no_random_floor,
                           workers=args.workers)
    r = m["domain"]["retrieval_heldout_phrasings"]
    print(f"{DOMAIN_LABEL}: {m['checkpoint']} ({m['size_mb']} MB); held-out frames and phrasings: text->image R@1 "
          f"{r['t2i_r1']:.3f} (chance {r['chance_t2i_r1']:.3f}), image->text R@1 {r['i2t_r1']:.3f}; card "
          f"{m['checkpoint'].removesuffix('.pth')}.md")
    return 0


def _domain_e2e(args: argparse.Namespace) -> int:
    import torch

    from anyskill.config.domain import E2ESettings
    from anyskill.domain.build import write_e2e_card
    from anyskill.domain.e2e import E2E_PROMPTS, OPPOSITES, random_floor, run_domain_e2e
    from anyskill.reward.clip_model import ClipModel, ClipSpec

    torch.set_num_threads(args.threads)
    items = list(E2E_PROMPTS.items())
    if any(not 0 <= i < len(items) for i in args.only or ()):
        print(f"anyskill domain-e2e: error: --only takes prompt numbers 0..{len(items) - 1}: "
              + "; ".join(f"{i} {p!r}" for i, (p, _) in enumerate(items)), file=sys.stderr)
        return 2
    prompts = dict(items[i] for i in args.only) if args.only else dict(items)
    if args.llc is None:
        from anyskill.llc.shipped import shipped_llc

        args.llc = shipped_llc()
    settings = E2ESettings(num_envs=args.envs, epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
                            latent_action=args.latent_action, anchor_scale=args.anchor_scale,
                            early_termination=args.early_termination)
    domain = ClipModel(ClipSpec(weights=args.weights))
    rnd = proj = None
    notes = []
    if args.random_floor:
        from anyskill.domain.data import DomainData

        rnd, proj, cosine = random_floor(DomainData.load(args.data), seed=args.seed)
        notes.append(f"the random ViT-B/32 floor uses a state projection fitted the same way to its features of 200 "
                     f"training frames (held-out cosine {cosine:.3f})")
    opposites = {p: o for p, o in OPPOSITES.items() if p in prompts} if args.opposites else None
    record = run_domain_e2e(domain, args.llc, args.out, prompts, rnd, proj, settings, notes=notes,
                            opposites=opposites, upright=args.upright)
    print(f"wrote {args.out}/e2e.json ({len(record['rows'])} rows)")
    if args.card:
        print(f"wrote {write_e2e_card(record, args.card)}")
    return 0


def add_domain_commands(sub) -> None:
    """Register ``train-domain-clip`` and ``domain-e2e`` on the ``anyskill`` parser's sub-parsers."""
    from anyskill.config.hlc import ANCHOR_SCALE, LATENT_ACTIONS
    from anyskill.config.reward import EARLY_TERMINATIONS

    d = sub.add_parser("train-domain-clip", help="render + caption this humanoid and train the project's domain "
                       "text-image model (closed vocabulary, not CLIP; clip_weights='anyskill-domain')")
    d.add_argument("--data", default=DEFAULT_DATA, help="captioned renders (made first if missing)")
    d.add_argument("--regenerate", action="store_true", help="render the data again (e.g. after a new controller)")
    d.add_argument("--llc", help="controller for the rollout frames (default: the shipped one)")
    d.add_argument("--rollout-frames", type=int, default=4000)
    d.add_argument("--workers", type=int, default=1, help="rendering processes")
    d.add_argument("--out", default="anyskill/checkpoints/anyskill_domain.pth", help="checkpoint; card and metrics "
                   "are written beside it")
    d.add_argument("--steps", type=int, default=800)
    d.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop training after this much wall time")
    d.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    d.add_argument("--no-random-floor", action="store_true", help="skip the random ViT-B/32 comparison")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_train_domain_clip)

    e = sub.add_parser("domain-e2e", help="end-to-end check of the domain model: a high-level policy per prompt "
                       "trained with its reward, the attribute the prompt names measured before and after",
                       description="For each prompt of anyskill.domain.e2e.E2E_PROMPTS, train a high-level policy "
                       "with the domain model's state-projection reward on the frozen controller and measure, from "
                       "deterministic rollouts, the fraction of frames showing the prompt's fact before and after "
                       "training. Defaults: the sizes of the recorded table (anyskill/checkpoints/anyskill_domain.md).")
    e.add_argument("--llc", help="controller checkpoint (default: the shipped one)")
    e.add_argument("--weights", default="anyskill-domain", help="the domain model (default: the shipped one; "
                   "'anyskill-domain:PATH' for another)")
    e.add_argument("--out", default="runs/domain_e2e", help="folder for the policies and e2e.json")
    e.add_argument("--only", type=int, nargs="*", metavar="N", help="prompt numbers to run (default: all)")
    e.add_argument("--envs", type=int, default=32)
    e.add_argument("--epochs", type=int, default=60)
    e.add_argument("--lr", type=float, default=1e-3)
    e.add_argument("--random-floor", action="store_true", help="also each prompt with random ViT-B/32 weights and a "
                   "projection fitted to 200 training frames of --data")
    e.add_argument("--data", default=DEFAULT_DATA, help="captioned renders for --random-floor")
    e.add_argument("--opposites", action="store_true", help="also the opposite prompts (e.g. 'arms down by the "
                   "sides'), measured on their prompt's fact")
    e.add_argument("--upright", action="store_true", help="also the rates on frames not fallen")
    e.add_argument("--card", metavar="E2E_JSON", help="record the table as the model's end-to-end JSON (e.g. "
                   "anyskill/checkpoints/anyskill_domain_e2e.json) and rewrite the model card beside it")
    e.add_argument("--latent-action", choices=LATENT_ACTIONS, default="free", help="how π_H's action becomes a "
                   "latent: free (the paper's) or anchored on the latent prior (anyskill.llc.prior)")
    e.add_argument("--anchor-scale", type=float, default=ANCHOR_SCALE, help="σ of anchored latent actions (default: "
                   "%(default)s)")
    e.add_argument("--early-termination", choices=list(EARLY_TERMINATIONS), default="paper",
                   help="paper: similarity resets terminate (the paper's text); truncate: they are bootstrapped; "
                   "falls-only: no similarity rule (the authors' code) (default: %(default)s)")
    e.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=_domain_e2e)

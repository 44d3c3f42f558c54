"""The ``anyskill`` command. Sub-commands grow with the project; ``anyskill --help`` lists them."""

from __future__ import annotations

import argparse
import sys


def _reproduce(args: argparse.Namespace) -> int:
    from anyskill.reproduce import reproduce

    return reproduce(scale=args.scale, out=args.out, only=args.only, seed=args.seed)


def _build_data(args: argparse.Namespace) -> int:
    from anyskill.data.build import build_bundled_data

    build_bundled_data(shared=args.shared, verbose=True)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from anyskill.motion import load_motion

    clip = load_motion(args.input)
    path = clip.save(args.output)
    print(f"{args.input} -> {path}: {clip.num_frames} frames at {clip.fps:g} fps ({clip.duration:.2f} s)")
    conv = clip.meta.get("conversion") or clip.meta.get("retarget")
    if conv:
        print(f"  conversion report: {conv}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anyskill", description="AnySkill companion: motion data, training, evaluation, notebooks.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reproduce", help="run the numbered notebooks with papermill")
    r.add_argument("--scale", default="smoke", choices=["smoke", "laptop", "paper"])
    r.add_argument("--out", default="outputs/smoke", help="folder for executed notebooks, figures/ and results/ ('.' = the repository's)")
    r.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 01 03")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=_reproduce)

    c = sub.add_parser("convert", help="convert a motion file (.npy poselib, .bvh, .npz) to the project's .npz format")
    c.add_argument("input")
    c.add_argument("output")
    c.set_defaults(func=_convert)

    b = sub.add_parser("build-data", help="(maintainers) rebuild anyskill/data from the shared sources")
    b.add_argument("--shared", default="../shared/data", help="folder holding motions/ and bvh/")
    b.set_defaults(func=_build_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

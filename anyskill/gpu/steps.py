"""The step runner of ``anyskill gpu-check``: commands run one after the other, each in its own process group under its
own time limit, all together under a total budget, so that a hang or a failure costs only its own step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from anyskill.provenance import REPO_ROOT


@dataclass
class Step:
    """One command of the check. ``argv`` may be a function of the results so far (checkpoint paths);
    ``collect(result, ctx)`` returns the step's key numbers after it ran; ``needs``: steps that must be ok first."""

    name: str
    argv: list[str] | Callable[[dict[str, Any]], list[str]]
    timeout: float
    env: dict[str, str] = field(default_factory=dict)
    collect: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    needs: tuple[str, ...] = ()
    skip_reason: str | None = None


def tail(text: str, chars: int = 2000) -> str:
    return text[-chars:]


def run_command(argv: list[str], timeout: float, env: dict[str, str] | None = None,
                log: TextIO | None = None) -> dict[str, Any]:
    """Run ``argv`` (in the repository's root) in its own process group for at most ``timeout`` s; returns status
    ("ok", "failed", "timed_out"), returncode, wall_s, stdout, stderr. On timeout the whole group gets SIGTERM, then
    SIGKILL."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    timed_out = False
    out: str | None
    err: str | None
    try:
        out, err = proc.communicate(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        timed_out = True
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                out, err = proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            out, err = "", ""
    wall = time.perf_counter() - t0
    status = "timed_out" if timed_out else ("ok" if proc.returncode == 0 else "failed")
    if log is not None:
        log.write(f"\n===== $ {' '.join(argv)}\n===== {status} (rc {proc.returncode}) in {wall:.1f} s\n"
                  f"----- stdout\n{out}\n----- stderr\n{err}\n")
        log.flush()
    return {"status": status, "returncode": proc.returncode, "wall_s": round(wall, 2), "stdout": out or "",
            "stderr": err or ""}


def run_steps(steps: list[Step], total: float, log: TextIO | None = None,
              ctx: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``steps`` in order; each gets min(its timeout, what is left of ``total``). A step whose ``needs`` did not
    end ok, or for which less than 5 s are left, is skipped. A failing ``collect`` marks its step failed."""
    ctx = {} if ctx is None else ctx
    t0 = time.perf_counter()
    records = []
    for step in steps:
        left = total - (time.perf_counter() - t0)
        rec: dict[str, Any] = {"name": step.name, "timeout_s": step.timeout, "numbers": {}}
        missing = [n for n in step.needs if ctx.get(n, {}).get("status") != "ok"]
        reason = step.skip_reason or (f"needs {', '.join(missing)}" if missing else None)
        if reason is None and left < 5:
            reason = f"total budget of {total:.0f} s spent"
        if reason is not None:
            rec.update(status="skipped", reason=reason, wall_s=0.0)
        else:
            argv = step.argv(ctx) if callable(step.argv) else step.argv
            result = run_command(argv, min(step.timeout, left), step.env, log)
            rec.update(command=argv, status=result["status"], returncode=result["returncode"],
                       wall_s=result["wall_s"], stderr_tail=tail(result["stderr"]),
                       stdout_tail=tail(result["stdout"], 800))
            if step.collect is not None and result["status"] != "timed_out":
                try:
                    rec["numbers"] = step.collect(result, ctx)
                except Exception as e:  # noqa: BLE001 - a broken output is this step's failure, not the run's
                    rec.update(status="failed", collect_error=f"{type(e).__name__}: {e}")
        ctx[step.name] = rec
        records.append(rec)
        print(f"[gpu_check] {step.name}: {rec['status']} in {rec['wall_s']:.1f} s "
              + json.dumps(rec["numbers"])[:300], flush=True)
    return records

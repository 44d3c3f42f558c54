"""Wall-clock limits for an rl-games training run: :class:`WallClockBudget`, an epoch callback.

rl-games stops a run only on an epoch or sample count. A time budget (a GPU lent for minutes, a CI slot) needs a
clean stop instead: the callback runs after every epoch's statistics are written, and once the budget is spent it
sets the agent's ``max_epochs`` to the epoch just finished, so rl-games' own end-of-run branch writes the final
``last_<name>_ep_<E>_rew_<r>.pth`` checkpoint and returns from ``train()``. Optionally it also writes a checkpoint
every ``checkpoint_every_s`` seconds (rl-games' ``save_frequency`` counts epochs, whose length varies by device), with
rl-games' file naming so that :func:`anyskill.llc.calm.train.run_checkpoints` and ``latest_checkpoint`` find them.

The stop is checked between epochs, so a run overshoots its budget by at most one epoch plus the final save.
"""

from __future__ import annotations

import os
import time
from typing import Any


class WallClockBudget:
    """``callback(agent, stats)`` for an rl-games agent's per-epoch hooks.

    Args:
        budget_s: seconds of training after which the run stops after the current epoch (None: no limit).
        checkpoint_every_s: seconds between extra checkpoints (None or <= 0: none beyond rl-games' own).
        clock: the time source (``time.perf_counter``; tests pass a fake one).
    """

    def __init__(self, budget_s: float | None, checkpoint_every_s: float | None = None, clock=time.perf_counter):
        if budget_s is not None and budget_s <= 0:
            raise ValueError(f"budget_s must be positive seconds, got {budget_s}")
        self.budget_s = budget_s
        self.checkpoint_every_s = checkpoint_every_s if checkpoint_every_s and checkpoint_every_s > 0 else None
        self.clock = clock
        self.start = clock()
        self._last_save = self.start
        self.stopped_at_epoch: int | None = None
        self.saved: list[str] = []

    def restart(self) -> None:
        """Count from now (call when training proper begins, after the set-up)."""
        self.start = self._last_save = self.clock()

    def elapsed(self) -> float:
        """Seconds since the budget was created (start of training)."""
        return self.clock() - self.start

    def exhausted(self) -> bool:
        return self.budget_s is not None and self.elapsed() >= self.budget_s

    def __call__(self, agent: Any, stats: dict[str, float]) -> None:
        epoch = int(stats["epoch"])
        if self.exhausted():
            if self.stopped_at_epoch is None:
                self.stopped_at_epoch = epoch
                agent.max_epochs = epoch  # rl-games saves the final checkpoint and returns after this epoch
            return
        if self.checkpoint_every_s is not None and self.clock() - self._last_save >= self.checkpoint_every_s:
            name = f"last_{agent.config['name']}_ep_{epoch}_rew_time"
            agent.save(os.path.join(agent.nn_dir, name))
            self.saved.append(name)
            self._last_save = self.clock()

"""Tracking first, then distillation, the route of the ``smoke``/``laptop``/``gpu`` scales: a residual PD tracker
π_T(a | s, reference) trained by PPO on reference timelines (``env``, ``tracker``), distilled by DAgger into the
encoder and π_L(a | s, z, τ) (``distill``, ``student``); entry point :func:`train_tracking_route`
(``anyskill train-llc --route tracking``)."""

from anyskill.llc.tracking.route import train_tracking_route

__all__ = ["train_tracking_route"]

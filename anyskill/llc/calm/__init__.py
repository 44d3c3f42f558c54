"""CALM (paper §3.1), the ``paper``-scale route: adversarial imitation with a conditional discriminator and an encoder
of motion windows, as an rl-games agent (``agent``), its networks and losses, its registration with rl-games
(``registry``); entry point :func:`train_llc` (``anyskill train-llc --route calm``)."""

from anyskill.llc.calm.registry import calm_config, register_calm
from anyskill.llc.calm.train import train_llc

__all__ = ["calm_config", "register_calm", "train_llc"]

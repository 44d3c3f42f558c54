"""rl-games adapters shared by ``llc`` and ``hlc``: the vec-env adapter and the training runner (seeding, device,
checkpoint loading, per-epoch progress, the result record)."""

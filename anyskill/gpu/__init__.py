"""The one-shot GPU verification, for a machine lent for minutes: ``anyskill gpu-check OUT_DIR`` runs every GPU path
of the project (Warp parity, benchmarks, both LLC routes, their evaluation, HLCs) as processes, each under its own
time limit, and leaves at most 8 files of at most 16 MiB; ``anyskill gpu-ingest OUT_DIR`` turns them into committed
results. ``scripts/gpu_check.sh`` installs what is missing first.

* :mod:`~anyskill.gpu.steps`: the step runner (process groups, time limits, a total budget);
* :mod:`~anyskill.gpu.check`: the steps, what each measured, the goals, ``gpu-check``;
* :mod:`~anyskill.gpu.files`: packing checkpoints and small files within the limits, and back;
* :mod:`~anyskill.gpu.ingest`: the ingest rules (which controller is shipped), ``gpu-ingest``.
"""

"""Evaluation of rollouts (paper §4.2, §4.4, §4.5, Tables 1–3): CLIP_S (``clip_score``), physical plausibility
measured on the simulated trajectory (``replay``, ``physics``), the interaction metrics of a scene
(``rollout_metrics``), and the human-rating protocol: blinded SQLite store and sessions (``ratings``), means with
confidence intervals and inter-rater agreement (``rating_stats``), the ipywidgets rating UI (``rating_ui``); the
compared methods of Tables 1–3 (``methods``, with the kinematic CLIP baseline ``kinematic``) and the tables beside the
paper's numbers (``tables``); the latent-action study of the anchored high-level action (``anchor_study``;
its figure and command ``anyskill anchor-study`` in :mod:`anyskill.viz.anchor_study`)."""

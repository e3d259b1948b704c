"""Reports: one run's figures (plots), and the ablation report over many runs (build_report).

runs: find and group runs; stats: t-intervals; aggregate: tables; scaling: weakness 1 (head size and
step time against the number of classes); diagnostics: per-model softmax confidence, KL check and
angle statistics; toy: 2-D / 3-D toy models; figures: the multi-run figures; build: report.md.
"""

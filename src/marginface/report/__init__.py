"""The ablation report over many runs (build_report): reads run folders only.

runs: find and group runs; stats: t-intervals; aggregate: tables; scaling: head_scaling.json (weakness 1,
head size and step time against the number of classes, measured by marginface.experiments.scaling);
toy: the toy models' figures (trained by marginface.experiments.toy); figures: the multi-run figures;
build: report.md.
"""

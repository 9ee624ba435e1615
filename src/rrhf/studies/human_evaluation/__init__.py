"""The human evaluation (config key ``human_evaluation``; docs/human_evaluation.md): blind pairwise judgments for
Table 3, each row's reply for Table 4, the annotators' offline pages."""

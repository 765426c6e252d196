"""Making runs: the one Lightning engine, the SVM fit, pretraining, distillation, ablations, combined runs."""

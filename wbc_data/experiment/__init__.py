"""The experiment wbc-data exists for: does adding synthetic cells of a rare class help a classifier on real cells?
(:mod:`wbc_data.experiment.run`; the statistics in :mod:`wbc_data.train.bootstrap`)."""

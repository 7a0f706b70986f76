"""``wbc-data split``: train / val / test (and optional folds) that never leak."""

from wbc_data.split.run import SplitError, SplitOptions, SplitResult, run_split

__all__ = ["SplitError", "SplitOptions", "SplitResult", "run_split"]

"""``wbc-data demo``: the whole road on the shipped sample, each step described once (what it runs and the argv
that repeats it), run in order, and collected into one report."""

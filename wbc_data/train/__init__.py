"""``wbc-data train``, ``evaluate``, ``predict``: timm classifiers (and their soft-voting ensemble) trained on the
manifest's splits through Accelerate, evaluated on real images only.

Small modules, one job each: ``recipe`` (the YAML), ``models`` (timm + weights + staged unfreezing), ``augment`` and
``degrade`` (transforms), ``sampling`` (class-balanced batches with a synthetic share), ``data`` (which rows train,
validate and test), ``loop`` (the Accelerate loop) and ``checkpoint`` (resume), ``ensemble`` (soft voting),
``model_io`` (the classifier folder), ``inference``, ``metrics``, ``evaluate`` and ``plots``, ``predict``, ``card``
(the model card), and ``run`` which wires them together.
Nothing here imports torch at package import time: the CLI stays fast.
"""

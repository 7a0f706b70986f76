"""How a sampling run's cells are framed: as the generator's training cells of their class (and domain) were.

A cell cut from an annotated box (a BCCD detection) fills its frame, while a whole CellaVision-style file holds its
cell in the middle with red cells around it; the classifier keeps the first whole and only the centre of the second
(``image.centre``, :class:`wbc_data.train.augment.Letterbox`). A synthetic cell is a whole PNG, so unless its row
says otherwise it is centre-cut too, and a cell drawn in a box-crop source's style (``synth --domain bccd``) would
reach the classifier zoomed in where its real counterparts are not: a shortcut from framing to "synthetic". Each
sample's line records the framing it imitates, the ``synth`` source adapter keeps it in the row's ``extra``, and the
pixel loader marks the row as a box crop from it (:func:`wbc_data.io.pixels.box_framed`).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from wbc_data.io.pixels import crop_box_of

Framing = Literal["box", "whole"]


def sample_framing(training: pd.DataFrame, frame: pd.DataFrame, label: str, domain: str | None) -> Framing:
    """``"box"`` when most of the generator's training cells of ``label`` (of source ``domain`` when one is asked
    for; of every class when none of ``label`` is known) were cut from annotated boxes, else ``"whole"``.

    ``training``: the generator's training rows (``sample_id``, ``source``, ``label``); ``frame``: this workspace's
    manifest, which knows each row's ``crop_box``. A generator without a domain condition draws its training mix,
    so its samples take the framing most of that class had."""
    known = training[["sample_id", "source", "label"]].merge(frame[["sample_id", "crop_box"]], on="sample_id")
    if domain is not None:
        known = known[known["source"] == domain]
    of_label = known[known["label"] == label]
    if len(of_label):
        known = of_label
    if not len(known):
        return "whole"
    boxed = sum(crop_box_of(box) is not None for box in known["crop_box"].tolist())
    return "box" if boxed * 2 > len(known) else "whole"


FRAMED: dict[str, str] = {
    "box": "as box crops (kept whole by the classifier)",
    "whole": "as whole images (the classifier keeps their centre)",
}
"""How the sampling run's notes describe each framing."""

"""``wbc-data synth``: a class-conditional diffusion generator for rare classes, and guards against copies and
against samples that are no cells.

Small modules, one job each (imports of torch and diffusers stay inside them, so the CLI starts fast):

- :mod:`recipe` reads the YAML recipes in ``generators/``;
- :mod:`data` picks the training rows, caches their pixels at the recipe's resolution, draws class-balanced batches;
- :mod:`model` builds the diffusers ``UNet2DModel`` (from a recipe or a local diffusers model);
- :mod:`pipeline` is the ``DiffusionPipeline`` subclass saved with every generator (self-contained: torch + diffusers),
  and numbers the class / null-class / domain embedding rows;
- :mod:`checkpoints` and :mod:`train` are the Accelerate training loop, checkpoints and resume;
- :mod:`folders` swaps whole folders in atomically (generators, sample folders);
- :mod:`generator` saves and loads a generator folder (pipeline + provenance);
- :mod:`guards` checks samples for copies (through dedup's public :mod:`wbc_data.dedup.copies`), diversity and a
  classifier's agreement; :mod:`embedding` is an ImageNet embedding not trained on these cells, in which :mod:`gate`
  rejects samples that are not plausible cells of their class and :mod:`fidelity` measures KID and
  precision/recall beside real-vs-real and noise references;
- :mod:`sample` draws accepted samples in batches, :mod:`rows` turns them into a synthetic source manifest;
- :mod:`grids` and :mod:`report` draw what happened.
"""

from __future__ import annotations

from wbc_data.core.errors import Interrupted, UserError


class SynthError(UserError):
    """A recipe, generator folder, class or option that cannot be used: one line naming the file and the reason."""


class TrainInterrupted(SynthError, Interrupted):
    """Training stopped (Ctrl-C or the time budget) after saving a checkpoint to resume from."""

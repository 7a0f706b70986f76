"""Two CPU processes (``python -m torch.distributed.run --nproc_per_node 2``, gloo): each rank augments the same
item with its own seed, and the gathered validation metrics equal those of one process on the same model and rows
(written by rank 0)."""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from wbc_data.train.augment import tensor_transform
from wbc_data.train.cache import AugmentedImages, Normalize
from wbc_data.train.loop import _validate
from wbc_data.train.metrics import macro_f1
from wbc_data.train.recipe import DegradeSpec, ImageSpec, Strength

out = sys.argv[1]
accelerator = Accelerator(cpu=True)
spec = ImageSpec(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear")
generator = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (11, 3, 16, 16), generator=generator, dtype=torch.uint8)  # 11: uneven shards
labels = torch.randint(0, 3, (11,), generator=generator)


class Base:
    def __len__(self):
        return len(labels)

    def __getitem__(self, i):
        return images[i], int(labels[i])


transform = tensor_transform(spec, Strength(rotate=180, flip=True, brightness=0.3), DegradeSpec())
augmented = AugmentedImages(Base(), transform, transform, (), rank=accelerator.process_index)
mine = augmented[(0, 7)][0][None]  # same item, same sampler seed on every rank
every = accelerator.gather(mine)

torch.manual_seed(1)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))
normalize = Normalize(spec.mean, spec.std)
loader = DataLoader(TensorDataset(images, labels), batch_size=4)
runner, prepared = accelerator.prepare(model, loader)
loss, f1, accuracy = _validate(accelerator, runner, prepared, normalize)
if accelerator.is_main_process:
    with torch.no_grad():
        logits = model(normalize(images))
    reference = (float(F.cross_entropy(logits, labels)), macro_f1(labels.numpy(), logits.argmax(1).numpy()))
    result = {
        "processes": accelerator.num_processes,
        "ranks_differ": not torch.equal(every[0], every[1]),
        "distributed": [loss, f1, accuracy],
        "single": [*reference, float((logits.argmax(1) == labels).float().mean())],
        "rank0_repeatable": bool(torch.equal(augmented[(0, 7)][0], augmented[(0, 7)][0])),
    }
    with open(out, "w") as handle:
        json.dump(result, handle)
accelerator.wait_for_everyone()

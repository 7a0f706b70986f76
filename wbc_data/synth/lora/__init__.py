"""``wbc-data synth train --recipe sd-lora --base <Hub id or folder>``: LoRA adapters (peft, as diffusers' LoRA
training scripts add them) fine-tuned on a pretrained Stable-Diffusion-style latent diffusion model, one text prompt
per class (and per source where asked). A sibling of the pixel recipe that shares its conventions: the recipe loader,
class-balanced batches from ``(seed, step)`` over the same pixel cache, Accelerate, EMA, checkpoints with exact resume,
the progress protocol, and a generator folder with ``wbc_generator.json`` that ``wbc-data synth`` samples from.

- :mod:`.recipe` reads ``kind: sd-lora`` recipes (rank, prompts, letterbox, training, sampling defaults);
- :mod:`.base` finds the base pipeline (a local folder, or the Hub through diffusers' cache) or says what is missing;
- :mod:`.train` is the Accelerate loop; :mod:`.generator` saves and loads the generator folder and samples classes.

torch, diffusers, transformers and peft are imported inside functions: the CLI starts fast.
"""

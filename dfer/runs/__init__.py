"""The run folder: what `dfer train`, `probe`, `zeroshot` and `finetune` write, and what every later command reads.

`folder` turns a RUN / `--model` argument into a run folder (a path, or a bundled model's name) and knows its
folds and whether it was fine-tuned; `files` writes and reads its JSON and safetensors; `load` rebuilds its model;
`card` writes its model card (README.md), beside the figures `report` lays out. Importing this package, or
`folder`, loads nothing heavy, so the CLI checks a RUN before torch loads.
"""

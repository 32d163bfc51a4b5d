"""Store rows in, model outputs out: what training, evaluation, stage 3 and prediction share to score a model.

`batch` stacks rows read from a store (or filled by `dfer predict`) into the batch the heads take, and moves it to
the device; `score` runs a model over batches without gradients. Nothing here trains, so `dfer predict` and
`dfer serve` import this and never the training loop (nor TensorBoard)."""

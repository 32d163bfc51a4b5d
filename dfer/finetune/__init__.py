"""Stage 3: fine-tune the encoders and the stage-2 heads end to end, on the face crops and waveforms the cache
kept (`--keep-media`). `dfer.finetune.run.finetune(store, init, out, cfg)` is the whole stage, its settings
`dfer.finetune.config.FinetuneConfig`; `dfer.evaluation.evaluate.evaluate_run(run, store)` scores its result from
media, as it scores any run; `dfer.cli.finetune` is its command. Importing this package loads nothing (not even
torch)."""

"""`dfer evaluate`: a finished run of either training stage scored on a store, or on a raw folder extracted like its
own store. It sits above both stages (`dfer.train`, `dfer.finetune`): it reads a stage-2 run's tokens and a stage-3
run's media, and neither stage imports it. `evaluate.evaluate_run` is the whole command; `end_to_end` takes a
fine-tuned run to a store's media, `raw_folder` extracts a folder like a run's store."""

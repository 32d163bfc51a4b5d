"""Stage 3: fine-tune the encoders and the stage-2 heads end to end, on the face crops and waveforms the cache
kept (`--keep-media`). `finetune(store, init, out, cfg)` is the whole stage; `dfer.train.evaluate.evaluate_run(run,
store)` scores its result from media, as it scores any run. Importing this package loads neither transformers,
NeMo nor peft."""

from dfer.finetune.config import FinetuneConfig, make_finetune_config

__all__ = ["FinetuneConfig", "make_finetune_config"]

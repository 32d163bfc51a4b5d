"""Use beyond training: raw video files in, class probabilities out, through a trained run's whole pipeline.

`predictor.Predictor` is the core (shared by `dfer predict` and `dfer serve`, whose commands are in `dfer.cli`);
`explain` explains one prediction from the model's own attention and masks (`explain_figure` draws it). Nothing heavy
is imported here.
"""

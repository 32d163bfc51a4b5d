"""dfer: audio-visual dynamic facial expression recognition from cached frozen-encoder tokens."""

__version__ = "0.1.0"

"""`dfer serve`: a trained run behind an HTTP API (FastAPI) with a browser page that records a clip from the webcam."""

# Width x height of a 4K UHD frame: the largest video `dfer serve` takes by default (--max-video-pixels). Phones record
# at most this; an 8K stream costs seconds of CPU a frame to decode. Here, so the CLI reads it without loading the app.
MAX_VIDEO_PIXELS = 3840 * 2160

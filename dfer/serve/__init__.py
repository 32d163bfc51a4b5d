"""`dfer serve`: a trained run behind an HTTP API (FastAPI) with a browser page that records a clip from the webcam."""

import os

# Width x height of a 4K UHD frame: the largest video `dfer serve` takes by default (--max-video-pixels). Phones record
# at most this; an 8K stream costs seconds of CPU a frame to decode. Here, so the CLI reads it without loading the app.
MAX_VIDEO_PIXELS = 3840 * 2160

# Predictions run at once by default, sharing the cores among them (`dfer.serve.cores`). MTCNN's networks and the
# lite encoders run small operations, which two requests side by side keep the cores busier with than one request
# split over both: on 2 cores, 4 clients, bench/serve_load.py gave 1.70 requests/s with 2 workers of 1 torch thread
# and 1.30 with 1 worker of 2 threads (one run each, the lite run, commit 3cf8dea's code).
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)

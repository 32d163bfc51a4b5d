"""`dfer serve`: a trained run behind an HTTP API (FastAPI) with a browser page that records a clip from the webcam."""

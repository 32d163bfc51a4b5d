"""`dfer serve`: load a run once, then serve it with uvicorn. Registered in `dfer.cli`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

errors = Console(stderr=True)
MAX_VIDEO_PIXELS = 3840 * 2160  # dfer.serve.app's default, not imported from it: the CLI loads the app only to serve


def serve(
    model: Path = typer.Option(..., "--model", help="a run folder (config.json + best.safetensors), e.g. runs/demo"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="larger uploads get 413"),
    workers: int = typer.Option(1, min=1, help="predictions run at once (threads sharing the loaded model)"),
    queue: int = typer.Option(4, min=0, help="requests that may wait for a worker; more get 503"),
    max_timeline_seconds: float = typer.Option(120.0, "--max-timeline-seconds", min=0, help="uploads longer than "
                                               "one window, up to this long, also get a timeline (0: never)"),
    max_video_pixels: int = typer.Option(MAX_VIDEO_PIXELS, "--max-video-pixels", min=0, help="videos whose frames "
                                         "have more pixels (width x height) get 413; the default is 4K UHD "
                                         "(3840x2160); 0: no limit"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
) -> None:
    """Serve a run over HTTP: POST /predict, GET /health, /labels, /docs, and a recording page at /."""
    import uvicorn

    from dfer.predict.predictor import Predictor
    from dfer.serve.app import create_app

    predictor = Predictor(model, device)
    for warning in predictor.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    app = create_app(predictor, max_upload_mb=max_upload_mb, workers=workers, queue=queue,
                     max_timeline_seconds=max_timeline_seconds, max_video_pixels=max_video_pixels)
    errors.print(f"serving {model} on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app, host=host, port=port)


if __name__ == "__main__":  # `python -m dfer.serve.command --model RUN`, the same as `dfer serve`
    typer.run(serve)

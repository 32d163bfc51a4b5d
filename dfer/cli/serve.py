"""`dfer serve`: load a run once, then serve it with uvicorn."""

from __future__ import annotations

import typer

from dfer import checks
from dfer.cli.output import errors
from dfer.cli.predict import parse_weights
from dfer.extras import require
from dfer.models import DEFAULT_MODELS
from dfer.serve import DEFAULT_WORKERS, MAX_VIDEO_PIXELS


def serve(
    model: list[str] | None = typer.Option(None, "--model", "-m", show_default=" + ".join(DEFAULT_MODELS),
                                           help="a run folder (e.g. runs/demo) or a bundled model (dfer models); "
                                           "repeat to fuse several"),
    weights: str | None = typer.Option(None, "--weights", show_default="equal",
                                       help="comma-separated weights of the fused --model runs"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, help="TCP port to listen on"),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", help="larger uploads get 413"),
    workers: int = typer.Option(DEFAULT_WORKERS, min=1, show_default="2, or 1 on one core",
                                help="predictions run at once (threads sharing the loaded model), each on the cores "
                                "shared among those running as it starts: all of them when alone"),
    queue: int = typer.Option(4, min=0, help="requests that may wait for a worker; more get 503"),
    max_timeline_seconds: float = typer.Option(120.0, "--max-timeline-seconds", min=0, help="uploads longer than "
                                               "one window, up to this long, also get a timeline (0: never)"),
    max_video_pixels: int = typer.Option(MAX_VIDEO_PIXELS, "--max-video-pixels", min=0, help="videos whose frames "
                                         "have more pixels (width x height) get 413 (the default: 4K UHD, "
                                         "3840x2160); 0: no limit"),
    device: str = typer.Option("cpu", help="cpu or cuda"),
) -> None:
    """Serve a run (or several fused) over HTTP: POST /predict, GET /health, /labels, /docs, a recording page at /."""
    require("dfer serve", "serve", "fastapi", "fastapi_offline", "uvicorn")
    checks.model_inputs(model)
    weights = parse_weights(weights)
    import uvicorn

    from dfer.predict.ensemble import load_model
    from dfer.serve.app import create_app

    predictor = load_model(model, device, weights)
    for warning in predictor.warnings:
        errors.print(f"[yellow]warning:[/] {warning}")
    app = create_app(predictor, max_upload_mb=max_upload_mb, workers=workers, queue=queue,
                     max_timeline_seconds=max_timeline_seconds, max_video_pixels=max_video_pixels)
    errors.print(f"serving {predictor.run} on http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app, host=host, port=port)

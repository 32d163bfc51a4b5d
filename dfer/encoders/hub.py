"""Whether the Hugging Face hub can be asked at all, and offline mode where it cannot.

Where the hub's host name does not resolve (no network, or a machine that sees only a package mirror),
huggingface_hub retries each request five times with backoff: `dfer extract --preset base` printed 11 retry lines
over ~23 s before its one line of error. Resolving the name once, up front, costs milliseconds; where it fails, the
encoder is built in huggingface_hub's offline mode, which transformers and NeMo both obey. A model in the local cache
loads as it would online; one the cache holds nothing of (`cached`) fails at once, before transformers or NeMo is
even imported.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

RESOLVE_SECONDS = 2.0  # a resolver that answers nothing in this long counts as no answer


def hub_host() -> str:
    """The host name of the hub huggingface_hub asks (`HF_ENDPOINT`, by default huggingface.co)."""
    from huggingface_hub import constants

    return urlsplit(constants.ENDPOINT).hostname or constants.ENDPOINT


@cache
def resolves(host: str) -> bool:
    """Whether `host` resolves within RESOLVE_SECONDS (asked once a process). The lookup runs on a daemon thread, so
    a resolver that never answers costs that long and no more."""
    answer: list[bool] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=lookup, daemon=True, name="dfer-hub-lookup")
    thread.start()
    thread.join(RESOLVE_SECONDS)
    return bool(answer and answer[0])


def cached(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds a snapshot of the model repository `repo_id` (some of its files)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    snapshots = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


@contextmanager
def offline_unless_resolvable() -> Iterator[str | None]:
    """Run the block in huggingface_hub's offline mode when the hub's host does not resolve; yields that host then,
    None when the hub is asked as usual. The mode is process-wide while the block runs (encoders are built on one
    thread)."""
    from huggingface_hub import constants

    host = hub_host()
    if constants.HF_HUB_OFFLINE or resolves(host):
        yield None
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield host
    finally:
        constants.HF_HUB_OFFLINE = False

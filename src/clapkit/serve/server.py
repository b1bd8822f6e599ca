"""Starting the service: open an index, load the model it was built with, run uvicorn on loopback."""

from __future__ import annotations

import ipaddress
import sys

from clapkit.errors import ClapkitError
from clapkit.index.library import SoundIndex
from clapkit.index.search import IndexSearcher, load_index_model
from clapkit.serve.app import LOOPBACK_HOSTS, ServeSettings, create_app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    index_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
    labels: list[str] | None = None,
    nprobe: int | None = None,
    model_options: dict | None = None,
    log_level: str = "info",
) -> None:
    """Run the service until interrupted. Binding another address than loopback prints a warning: the service has
    no authentication, anyone who reaches the port can search the library and download its files."""
    import uvicorn

    index = SoundIndex.open(index_dir, nprobe=nprobe)
    model = load_index_model(index, **(model_options or {}))
    searcher = IndexSearcher(index, model, labels=labels)
    settings = settings or ServeSettings()
    if not is_loopback(host):
        print(
            f"clapkit serve: warning: listening on {host}, not loopback: anyone who reaches port {port} can search "
            "this library and download its files (there is no authentication)",
            file=sys.stderr,
        )
        if settings.allowed_hosts == LOOPBACK_HOSTS:
            settings = ServeSettings(**{**vars(settings), "allowed_hosts": ("*",)})
    if len(index) == 0:
        raise ClapkitError(f"{index_dir}: the index is empty; add files with `clapkit index add {index_dir} PATHS`")
    shown = f"[{host}]" if ":" in host else host
    print(
        f"clapkit serve: {len(index)} sounds ({index.kind} search), model {index.model['name']!r}; "
        f"open http://{shown}:{port}/  (API schema: /openapi.json; Ctrl-C stops)",
        file=sys.stderr,
    )
    uvicorn.run(create_app(searcher, settings), host=host, port=port, log_level=log_level)

"""Starting the service: open an index, load the model it was built with, run uvicorn on loopback."""

from __future__ import annotations

import errno
import ipaddress
import socket
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

    listening = bind(host, port)  # first: a busy port is the only thing said, before any model is loaded
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
        listening.close()
        raise ClapkitError(f"{index_dir}: the index is empty; add files with `clapkit index add {index_dir} PATHS`")
    shown = f"[{host}]" if ":" in host else host
    print(
        f"clapkit serve: {len(index)} sounds ({index.kind} search), model {index.model['name']!r}; "
        f"open http://{shown}:{port}/  (API schema: /openapi.json; Ctrl-C stops)",
        file=sys.stderr,
    )
    config = uvicorn.Config(create_app(searcher, settings), host=host, port=port, log_level=log_level)
    uvicorn.Server(config).run(sockets=[listening])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a :class:`ClapkitError` saying why when it cannot be had."""
    listening = None
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host.strip("[]"), port))
        listening.listen(2048)
    except OSError as exc:
        if listening is not None:
            listening.close()
        reason = {errno.EADDRINUSE: "the address is already in use (another server there? pass --port N)",
                  errno.EACCES: "permission denied (ports below 1024 need privileges; pass --port N)",
                  errno.EADDRNOTAVAIL: "this machine has no such address (check --host)"}  # fmt: skip
        raise ClapkitError(f"cannot listen on {host}:{port}: {reason.get(exc.errno, exc.strerror or exc)}") from None
    listening.set_inheritable(True)
    return listening

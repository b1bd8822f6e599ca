"""HTTP service and web page over a sound index (FastAPI + uvicorn): ``clapkit serve --index DIR``."""

from clapkit.index.search import load_index_model
from clapkit.serve.app import ServeSettings, create_app
from clapkit.serve.server import serve

__all__ = ["ServeSettings", "create_app", "load_index_model", "serve"]

"""The REST service: a FastAPI app over one run folder (``app``), its bodies (``schemas``), and
micro-batching with the gate in front (``batching``)."""

from medsent.interfaces.serve.app import create_app, model_info, serve
from medsent.interfaces.serve.schemas import Limits

__all__ = ["Limits", "create_app", "model_info", "serve"]

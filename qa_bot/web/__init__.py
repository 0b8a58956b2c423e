"""The web chat: :mod:`.render` (HTML), :mod:`.handlers` (events, no Gradio), :mod:`.app` (Gradio, serving)."""

from __future__ import annotations

from .app import build_app, launch_options, serve

__all__ = ["build_app", "launch_options", "serve"]

"""svpkit plugin: labeling rounds through a Label Studio server (docs/labeling.md, "Label Studio").

Adds the commands ``svpkit ls-query`` (``svpkit query`` + the batch as Label Studio tasks with
the proxy's predictions), ``svpkit ls-push`` and ``svpkit ls-label`` (the annotations imported
like an answer file). The modules are imported only when a command of the plugin runs.
"""

from __future__ import annotations

from typing import Any

from svpkit.hookspecs import hookimpl


@hookimpl
def register_commands(app: Any) -> None:
    from svpkit_labelstudio.commands import register

    register(app)

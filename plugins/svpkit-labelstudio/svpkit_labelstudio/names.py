"""What the plugin writes into a labeling project's run and into Label Studio tasks."""

from __future__ import annotations

TAG_URL = "svpkit.label_studio.url"
"""Tag: the Label Studio server the project's rounds went to."""
TAG_PROJECT = "svpkit.label_studio.project"
"""Tag: the Label Studio project id."""
TOKEN_ENV = "LABEL_STUDIO_API_KEY"
"""Environment variable with the token (a legacy API token or a personal access token)."""
URL_ENV = "LABEL_STUDIO_URL"
DOCUMENT_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
"""The server's local-files document root (the same variable the server reads)."""

# Task data fields (``data.<name>`` in Label Studio).
FIELD_ID = "svpkit_id"
FIELD_ROUND = "svpkit_round"
FIELD_RANK = "svpkit_rank"
FIELD_SCORE = "svpkit_score"
FIELD_RUN = "svpkit_run"
CHOICES = "label"
"""The ``Choices`` control's name in the labeling config (``from_name``)."""


def round_artifact(round_no: int) -> str:
    """Artifact ``label_studio/round_<r>.json``: the server, the project and svpkit id → task id."""
    return f"label_studio/round_{round_no}.json"

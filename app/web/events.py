"""Names of the server events sent to htmx in ``HX-Trigger`` headers.

Templates listen for them (``hx-trigger="pair-decided from:body"``); keeping the names
here means a typo is an ImportError, not a page that silently stops refreshing.
"""

from __future__ import annotations

import json

PAIR_DECIDED = "pair-decided"
PAIR_SAVED = "pair-saved"
PAIR_SKIPPED = "pair-skipped"
PAIR_UNDONE = "pair-undone"
PAIRS_TRIAGED = "pairs-triaged"
PAIR_ADJUDICATED = "pair-adjudicated"
VIDEO_QUEUED = "video-queued"
RELEASE_CREATED = "release-created"
USER_CREATED = "user-created"


def trigger(*events: str) -> dict[str, str]:
    """Response headers that fire ``events`` on the client."""
    return {"HX-Trigger": json.dumps(dict.fromkeys(events, True))}

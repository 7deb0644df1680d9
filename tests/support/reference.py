"""Where the real API's reference lives: `shared/reference/` beside the repository (as CI lays it)."""

from __future__ import annotations

from pathlib import Path

WEDATA_REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "wedata-2025-10-10"
WEDATA_EXAMPLES = WEDATA_REFERENCE / "examples"

"""Free-form device metadata (`devices.metadata`, jsonb): bounded and storable.

Metadata is returned with every device in every list page, so its size is capped (issue 10 §9:
10 MB was accepted and sent to every console). It must also be storable as PostgreSQL jsonb, which
refuses NUL characters, lone surrogates and NaN/Infinity; those are refused here with a reason
instead of failing in the database (issue 10 §6).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 8


def metadata_problem(value: Any) -> str | None:
    """Why `value` cannot be a device's metadata, or None when it can."""
    problem = _walk(value, 0)
    if problem is not None:
        return problem
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        return f"metadata is {size} bytes as JSON, at most {MAX_METADATA_BYTES} allowed"
    return None


def _walk(value: Any, depth: int) -> str | None:
    if depth > MAX_METADATA_DEPTH:
        return f"metadata nested deeper than {MAX_METADATA_DEPTH} levels"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "metadata numbers must be finite (no NaN or Infinity)"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(str(key)) or _walk(item, depth + 1)
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _walk(item, depth + 1)
            if problem is not None:
                return problem
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "metadata text must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "metadata text must be valid Unicode (no lone surrogates)"
    return None

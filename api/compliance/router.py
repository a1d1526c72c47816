"""Compliance summaries (domain.md §5)."""

from __future__ import annotations

from fastapi import APIRouter

from api.errors import ERROR_RESPONSES

router = APIRouter(tags=["compliance"], responses={k: ERROR_RESPONSES[k] for k in (403, 404)})

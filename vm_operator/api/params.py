"""Query parameter values (pure)."""

from __future__ import annotations

import re

from vm_operator.edge.errors import ApiError
from vm_operator.edge.routing import Request


def int_param(req: Request, key: str, default: int, low: int, high: int) -> int:
    raw = req.query.get(key)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not low <= int(raw) <= high:
        raise ApiError("invalid-parameter", f"{key} must be a whole number from {low} to {high}")
    return int(raw)


def bool_param(req: Request, key: str) -> bool:
    raw = req.query.get(key, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ApiError("invalid-parameter", f"{key} must be true or false")
    return raw in ("true", "1")


def choice_param(req: Request, key: str, choices: tuple[str, ...]) -> str | None:
    raw = req.query.get(key)
    if raw is not None and raw not in choices:
        raise ApiError("invalid-parameter", f"{key} must be one of: {', '.join(choices)}")
    return raw

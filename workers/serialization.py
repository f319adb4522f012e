"""kombu's `json` serializer with a faster decoder and the same results.

kombu decodes every message with an `object_hook` that turns its typed envelopes
(`{"__type__": ..., "__value__": ...}`) back into datetimes, decimals and bytes. The hook is a Python
call per JSON object: an order chunk (~100 orders, ~6,000 objects) decodes about a third slower with
it, and a worker decodes each message body twice (the consumer reads it, the task reads it again).
Our messages carry plain JSON from the APIs; a body that holds no `__type__` key decodes without the
hook to the same value. The check is exact: a key equal to `__type__` is either written literally or
with an escaped ASCII character, which Python's encoder never emits (\\u005x-\\u007x escapes).
"""

from __future__ import annotations

import json
from typing import Any

from kombu.serialization import registry
from kombu.utils import json as kombu_json

_MARKERS = ("__type__", "\\u005", "\\u006", "\\u007")


def loads(s: str | bytes | bytearray | memoryview) -> Any:
    if isinstance(s, memoryview):
        s = s.tobytes().decode("utf-8")
    elif isinstance(s, bytes | bytearray):
        s = s.decode("utf-8")
    if any(marker in s for marker in _MARKERS):
        return kombu_json.loads(s)
    return json.loads(s)


def install() -> None:
    """Replace the `json` decoder of this process's kombu registry (the encoder stays kombu's)."""
    registry.register("json", kombu_json.dumps, loads, content_type="application/json", content_encoding="utf-8")

"""Schemathesis hooks for `npm run test:fuzz` (loaded through `hooks` in the generated config).

Bounds the event stream (see `before_call` below), and:

Works around a CPython 3.11 (< 3.11.8) bug: `ast.parse` called from several threads at once can
fail with "AST constructor recursion depth mismatch" (python/cpython#106905). Hypothesis parses
lambda sources to describe strategies, and Schemathesis's `--workers` are threads, so a run could
end in a Runtime Error that has nothing to do with the API. Those parses are serialized here.
"""

import threading

import schemathesis

from hypothesis.internal import lambda_sources

_lock = threading.Lock()
_describe = lambda_sources._lambda_description


def _serialized_lambda_description(*args, **kwargs):
    with _lock:
        return _describe(*args, **kwargs)


lambda_sources._lambda_description = _serialized_lambda_description


# The event stream (GET /v1/events/stream) never ends unless asked to: Schemathesis would read each
# one until the request timeout. Every request to it that the server would accept is asked to end
# once it has sent what is stored (`maxSeconds=0`); values the server refuses (the negative cases,
# answered 400 at once) are left as generated.
STREAM_PATH = "/v1/events/stream"


def _accepted_max_seconds(value):
    try:
        return 0 <= int(str(value)) <= 86400 and str(value).strip().lstrip("+").isdigit()
    except (TypeError, ValueError):
        return False


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.operation.path != STREAM_PATH:
        return
    query = dict(case.query or {})
    value = query.get("maxSeconds")
    if value is None or _accepted_max_seconds(value):
        query["maxSeconds"] = 0
        case.query = query

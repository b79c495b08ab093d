"""Schemathesis hooks for scripts/schemathesis.sh.

Idempotency-Key: schemathesis draws keys from a small space ("0", "00", ...) and reuses
them with different bodies under one credential, which the contract answers with 422
`idempotency_mismatch` -- correct, but it hides what the request itself would have got.
Every key of a valid length is replaced by a fresh random one, so each request is judged
on its own; keys of an invalid length (empty, over 255) are kept and must still be 422.
Replays with the same key are covered by the integration tests.
"""

import uuid

import schemathesis


def _negative_header_case(case):
    """A case whose broken part is a header (e.g. Authorization left out): editing its
    headers would make schemathesis re-validate it as a positive case and send the header
    it meant to leave out, so such cases are sent as generated."""
    meta = getattr(case, "meta", None)
    if meta is None:
        return False
    try:
        return bool(meta.generation.mode.is_negative) and str(meta.phase.data.parameter_location).lower().endswith(
            "header"
        )
    except AttributeError:
        return False


@schemathesis.hook
def before_call(context, case, kwargs):
    # Runs before every request of every phase (the coverage phase's cases are not built by
    # the generation hooks).
    if _negative_header_case(case):
        return
    headers = case.headers or {}
    for name in list(headers):
        key = headers[name]
        if name.lower() == "idempotency-key" and isinstance(key, str) and 1 <= len(key) <= 255:
            headers[name] = uuid.uuid4().hex

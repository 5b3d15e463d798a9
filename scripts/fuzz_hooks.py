"""schemathesis hooks for scripts/fuzz-api.sh.

- Sizes: one generated example may not ask for more than a thousand codes. A
  unique group of a million codes is a valid request (the benchmark times
  it); here it would only make the run slow.
- Realistic data for schema-valid examples. JSON Schema cannot say that a
  phone number is one a carrier could have issued, that an expiry lies in
  the future, which fields go with which kind of group, or how much money a
  wallet holds. A schema-valid example gets those facts right here, the way
  a fixture would, so that `positive_data_acceptance` judges the API on
  requests that really are valid. Schema-invalid (negative) examples are
  left exactly as generated.
"""

import datetime
import zlib

import schemathesis

MAX_CODES = 1_000
# Numbers the platform's phone validation accepts, each matching the API's
# phone pattern (a rewrite that broke the pattern would turn the example
# into a negative one).
PHONES = [
    "+14155552671",
    "+14155550100",
    "415 555 0101",
    "415.555.0102",
    "4155550103",
    "+442079460018",
]
SEEDED_PHONE = "+14155552671"


def _positive(case):
    """A schema-valid example: generated positive, and no part of it negative."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return False
    return not any(c.mode.is_negative for c in meta.components.values())


def _pick(values, seed):
    # A stable choice: Python's own hash() differs from run to run.
    return values[zlib.crc32(str(seed).encode()) % len(values)]


def _future(value, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if when.tzinfo is not None and when > now + datetime.timedelta(minutes=5):
            return value
    except ValueError:
        pass
    return (now + datetime.timedelta(days=days)).isoformat().replace("+00:00", "Z")


def _group(body):
    kind = body.get("kind")
    if kind == "unique":
        for field in ("max_redemptions", "code"):
            body.pop(field, None)
        body["count"] = 1 + int(body.get("count") or 0) % MAX_CODES
    elif kind == "shared":
        body.pop("per_phone_limit", None)
        if body.get("count") not in (None, 1):
            body.pop("count")
        if body.get("code") is not None and body.get("prefix") is not None:
            body.pop("prefix")
        limit = body.get("max_redemptions") or 1
        body["max_redemptions"] = max(1, min(limit, (2**63 - 1) // body["amount"]))
    if "expires_at" in body and body["expires_at"] is not None:
        body["expires_at"] = _future(body["expires_at"], 365)
        if body.get("starts_at") is not None and str(body["starts_at"]) >= str(body["expires_at"]):
            body.pop("starts_at")
    return body


@schemathesis.hook
def map_case(context, case):
    body = case.body
    if isinstance(body, dict):
        body = dict(body)
        count = body.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > MAX_CODES:
            body["count"] = 1 + count % MAX_CODES
        if _positive(case):
            if isinstance(body.get("phone"), str):
                body["phone"] = _pick(PHONES, body["phone"])
            if case.method == "POST" and case.path.endswith("/gift-groups"):
                body = _group(body)
            if case.path.endswith("/debits") and isinstance(body.get("amount"), int):
                # The seeded wallet holds 10^12: no debit run empties it.
                body["amount"] = 1 + body["amount"] % 1_000_000
        case.body = body
    return case

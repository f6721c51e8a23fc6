"""The outcome vocabulary shared by every batch operation (no pandas here: cheap to import)."""

from __future__ import annotations

#: every requested device ends in exactly one of these
SUCCESS, FAILED, UNKNOWN, SKIPPED = "success", "failed", "unknown", "skipped"
OUTCOMES = (SUCCESS, FAILED, UNKNOWN, SKIPPED)
#: one colour per outcome, the same in every figure and widget
COLOURS = {SUCCESS: "#2e7d32", FAILED: "#c62828", UNKNOWN: "#ef8f00", SKIPPED: "#9e9e9e"}

# error codes romakit itself gives when the service gave none
TIMEOUT = "romakit.Timeout"  # sent, no answer in time -> unknown
CONNECTION_LOST = "romakit.ConnectionLost"  # sent, link dropped before the answer -> unknown
CONNECT_ERROR = "romakit.ConnectError"  # never reached the service -> failed, transient
NOT_IN_ANSWER = "romakit.NotInAnswer"  # answered, but this device was not mentioned -> unknown
MALFORMED = "romakit.Malformed"  # answered with something unreadable -> unknown
REPORTED_FAILED = "romakit.ReportedFailed"  # listed in 'failed' with no reason given -> failed
INTERNAL = "romakit.InternalError"  # a bug of ours while handling the chunk -> unknown
CANCELLED = "romakit.Cancelled"  # skipped: the user cancelled
ABORTED = "romakit.Aborted"  # skipped: abort criteria met
CANARY_REFUSED = "romakit.CanaryRefused"  # skipped: the canary gate was refused
AUTH_REFUSED = "romakit.AuthRefused"  # skipped: the service refused the credentials; the run stopped
JOURNAL_FAILED = "romakit.JournalFailed"  # skipped: the journal could not be written; the run stopped
SNAPSHOT_UNREADABLE = "romakit.SnapshotUnreadable"  # failed: not deleted, its record could not be kept first

# API Gateway's codes (APIG.* on ROMA Connect's gateway, APIGW.* in the signing guide).
#: the credentials were refused (401/403): never retried, they stop the run
AUTH_CODES = frozenset({
    "APIG.0301", "APIGW.0301",  # incorrect IAM authentication information (401)
    "APIG.0302", "APIGW.0302",  # the IAM user is not authorized to access the API (403)
    "APIG.0307", "APIGW.0307",  # the token must be updated (401)
    "APIG.1002", "APIG.1005",  # as ROMA Connect's API reference lists them (401, 403)
})
#: throttled (429): retried after Retry-After
THROTTLE_CODES = frozenset({"APIG.0308", "APIGW.0308"})

#: service codes worth another try (throttling, server errors)
TRANSIENT_CODES = frozenset({*THROTTLE_CODES, "APIG.9999", CONNECT_ERROR, TIMEOUT, CONNECTION_LOST, MALFORMED, NOT_IN_ANSWER, INTERNAL,
                             SNAPSHOT_UNREADABLE})


def transient_status(status: int | None) -> bool:
    """True for an HTTP status worth another try: 429 and every 5xx."""
    return status is not None and (status == 429 or 500 <= status < 600)


def is_transient(outcome: str, error_code: str | None, http_status: int | None = None) -> bool:
    """True when a device's outcome is worth retrying: unknown, or failed for a passing cause
    (the HTTP status first: any 429 or 5xx, whatever its code; then the code)."""
    if outcome == UNKNOWN:
        return True
    if outcome != FAILED:
        return False
    if transient_status(http_status):
        return True
    if not error_code or error_code in AUTH_CODES:
        return False
    return error_code in TRANSIENT_CODES or error_code.startswith("HTTP.5") or error_code == "HTTP.429"

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

#: service codes worth another try (throttling, server errors)
TRANSIENT_CODES = frozenset({"APIG.0308", "APIG.9999", CONNECT_ERROR, TIMEOUT, CONNECTION_LOST, MALFORMED, NOT_IN_ANSWER, INTERNAL})


def is_transient(outcome: str, error_code: str | None) -> bool:
    """True when a device's outcome is worth retrying: unknown, or failed for a passing cause."""
    if outcome == UNKNOWN:
        return True
    if outcome != FAILED or not error_code:
        return False
    return error_code in TRANSIENT_CODES or error_code.startswith("HTTP.5") or error_code == "HTTP.429"

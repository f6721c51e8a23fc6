"""What a person must do before a plan runs: :class:`Guard`, the one set of confirmation
rules the CLI and the panel apply, and the words that say what a run will do."""

from __future__ import annotations

from dataclasses import dataclass

from romakit.engine.plan import BatchPlan
from romakit.errors import InputError
from romakit.operations import operation as registry_row

#: gateways named in a fan-out's wording before the rest are counted
NAMED_GATEWAYS = 5
#: what a plan of an effect that cannot be undone warns of
PERMANENT = ("the platform cannot undo a deletion: romakit keeps a snapshot of each device just before its chunk "
             "is sent and can re-create it from there (rk.restore), but not its data history, shadow or messages.")
#: what a deletion run without a journal can undo: nothing
NO_SNAPSHOT = "not journaled: no snapshot is kept, so romakit cannot restore the deleted devices"
#: what a plan run without a journal warns of
NOT_JOURNALED = ("not journaled: nothing of this run is recorded; it cannot be listed, reported or resumed "
                 "afterwards")


def plural(count: int, word: str) -> str:
    """``"1 device"``, ``"1,234 devices"``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def hidden_note(hidden: int) -> str:
    """What a plan holding ``hidden`` devices the filters do not show says of them ("" for none)."""
    if not hidden:
        return ""
    return f"{hidden:,} of them {'is' if hidden == 1 else 'are'} hidden by the filters"


def what(plan: BatchPlan, target: str, *, hidden: int = 0) -> str:
    """What running ``plan`` on ``target`` does, in the operation's words ("force 12
    devices offline"); a fan-out names its gateways, those with the most children first.
    ``hidden``: selected devices the filters do not show, said, since they are sent too."""
    counts = plan.gateways
    note = f" ({hidden_note(hidden)})" if hidden else ""
    if not counts:
        return registry_row(plan.operation).verb.format(n=f"{plan.devices:,}", target=target) + note
    shown = ", ".join(f"{g}: {c:,}" for g, c in list(counts.items())[:NAMED_GATEWAYS])
    more = f", and {len(counts) - NAMED_GATEWAYS:,} more" if len(counts) > NAMED_GATEWAYS else ""
    act = "re-create" if registry_row(plan.operation).expected == "restored" else "permanently delete"
    return (f"{act} {plural(plan.devices, 'child device')} across "
            f"{plural(len(counts), 'gateway')} ({shown}{more}){note}")


def restorable(plan: BatchPlan, *, snapshot: bool = True) -> str | None:
    """What of ``plan``'s effect romakit can undo, in words (None: nothing to say):
    ``"1,200 child devices fully restorable ..."``, ``"40 LINK devices restorable without
    their secret ..."``; for a restore, what comes back and what does not. ``snapshot``:
    False when the deletion runs without one (``keep_snapshot=False``)."""
    n, op = plan.devices, plan.operation
    if op in ("delete_devices", "delete_sub_devices") and not snapshot:
        return "no snapshot kept (keep_snapshot=False): romakit cannot restore the deleted devices"
    if op in ("delete_devices", "delete_sub_devices") and not plan.journaled:
        return NO_SNAPSHOT
    if op == "delete_sub_devices":
        return (f"{plural(n, 'child device')} fully restorable (rk.restore): the same device id, node id, product, "
                "name, description and extension info, through their gateway; not their data history, shadow or "
                "messages")
    if op == "delete_devices":
        return (f"{plural(n, 'LINK device')} restorable without their secret (rk.restore): a restored device gets a "
                "new id, client id and secret, so the field device needs its secret reset; not their data history, "
                "shadow or messages")
    if op == "restore_devices":
        return (f"{plural(n, 'LINK device')} come back with their product, name, node id, parent, tags and "
                "description, but a new id, client id and secret: each field device needs its secret reset")
    if op == "restore_sub_devices":
        return (f"{plural(n, 'child device')} come back with their own device id, node id, product, name, "
                "description and extension info, under their gateway")
    return None


def journal_note(plan: BatchPlan) -> str | None:
    """The line a preview shows when ``plan`` runs without a journal (None: it is journaled)."""
    return None if plan.journaled else NOT_JOURNALED


def typed_count(text: str | None) -> str:
    """A typed count as digits only (``1,000`` and ``1_000`` read as ``1000``)."""
    return (text or "").strip().replace(",", "").replace("_", "")


@dataclass(frozen=True)
class Guard:
    """The confirmation a plan needs: a run is always confirmed, and above
    ``blast_radius`` devices the person also types their number. ``permanent_only``:
    the typed count is asked only of an effect that cannot be undone (the CLI's rule;
    the panel asks it of every operation)."""

    blast_radius: int
    permanent_only: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.blast_radius, bool) or not isinstance(self.blast_radius, int) or self.blast_radius < 0:
            raise InputError(f"blast_radius must be an int >= 0, got {self.blast_radius!r}")

    def wants_count(self, plan: BatchPlan) -> bool:
        """True when the number of devices must be typed before ``plan`` runs."""
        return plan.devices > self.blast_radius and (plan.permanent or not self.permanent_only)

    def counted(self, plan: BatchPlan, typed: str | None) -> bool:
        """True when ``typed`` is the count ``plan`` needs (or it needs none)."""
        return not self.wants_count(plan) or typed_count(typed) == str(plan.devices)

    def above(self, plan: BatchPlan) -> str:
        """Why the count is asked: ``"1,200 devices is above the blast radius of 1,000"``."""
        return f"{plan.devices:,} devices is above the blast radius of {self.blast_radius:,}"

    def ask(self, plan: BatchPlan) -> str:
        """What a run refused for want of the typed count says."""
        return f"{self.above(plan)}: type {plan.devices} in the box to confirm"


__all__ = ["NOT_JOURNALED", "NO_SNAPSHOT", "PERMANENT", "Guard", "hidden_note", "journal_note", "plural", "restorable",
           "typed_count", "what"]

"""How a run's end reads in MLflow: its status, and what of it could not be kept.

A run is not reported as a clean success when its journal could not hold everything (a full or
read-only disk: the ``end`` line counts what was lost), or when lines of its journal (or of its
other processes' journals) could not be read back (torn, or not in the format): it ends FAILED,
tagged ``nbtrack.lost_points``, ``nbtrack.lost_items`` and ``nbtrack.end_reason``, which say how
many and why. The counts are the sync process's, kept with its progress (``upload.py``), so a
restart of it neither forgets nor repeats them.
"""

from __future__ import annotations

from nbtrack.journal.format import End

__all__ = ["abandoned_reason", "ended"]

# MLflow's limit on a tag value is 5000 characters.
_MAX_REASON = 4900


def ended(end: End, skipped: int) -> tuple[str, dict[str, str]]:
    """The status a run ends with and the tags that say why, for its ``end`` line and the
    number of lines ``skipped`` in its journals (no tags for a clean end)."""
    if not (end.lost_points or end.lost_items or skipped):
        return end.status, {}
    reasons = []
    if end.lost_points or end.lost_items:
        reasons.append(
            f"{end.lost_points:,} points and {end.lost_items:,} params/tags/artifacts could not "
            f"be written to nbtrack's local journal ({end.problem or 'write error'})"
        )
    tags = {
        "nbtrack.lost_points": str(end.lost_points),
        "nbtrack.lost_items": str(end.lost_items),
        "nbtrack.end_reason": _joined(reasons, skipped),
    }
    return ("FAILED" if end.status == "FINISHED" else end.status), tags


def abandoned_reason(reason: str, skipped: int) -> str:
    """Why a run whose kernel died ends FAILED (``reason``), with the lines ``skipped``."""
    return _joined([reason], skipped)


def _joined(reasons: list[str], skipped: int) -> str:
    if skipped:
        reasons.append(
            f"{skipped} unreadable journal lines skipped (torn, or not in nbtrack's format)"
        )
    return "; ".join(reasons)[:_MAX_REASON]

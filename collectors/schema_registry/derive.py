"""What the collector works out from what it read: which subjects to read this cycle (the rolling refresh keeps
the load flat however many subjects there are), the changes since the last cycle (events), and the settings
worth a warning."""

from __future__ import annotations

import math

from monitoring.models.schema_registry import KarapaceHealth, Subject

RISKY_MODES = {"READONLY": "no new schemas can be registered", "READONLY_OVERRIDE": "no new schemas can be registered",
               "IMPORT": "schemas are being imported with fixed ids; producers cannot register"}
NEW_SUBJECTS_PER_CYCLE = 100


def due_subjects(detailed: list[str], previous: dict[str, Subject], cursor: int, interval_seconds: float,
                 inventory_refresh_seconds: float) -> tuple[list[str], int]:
    """Subjects to read this cycle, new ones first, then the next slice of the rolling refresh; and where the
    refresh goes on next cycle.

    A slice is the share of all subjects that keeps every one refreshed once per inventory period; new subjects
    may use up to NEW_SUBJECTS_PER_CYCLE (or the slice, if larger), so a registry with thousands of subjects is
    read in over one period instead of in one burst.
    """
    share = math.ceil(len(detailed) * interval_seconds / inventory_refresh_seconds)
    budget = max(share, NEW_SUBJECTS_PER_CYCLE)
    new = [name for name in detailed if name not in previous or previous[name].read_at is None][:budget]
    known = [name for name in detailed if name in previous and previous[name].read_at is not None]
    refresh = min(share, budget - len(new), len(known))
    if refresh <= 0:
        return new, cursor
    start = cursor % len(known)
    return new + (known[start:] + known[:start])[:refresh], start + refresh


def changes(before: dict[str, Subject], after: dict[str, Subject], vanished: set[str], soft_deleted: set[str],
            compatibility_before: str | None, compatibility: str | None, mode_before: str | None,
            mode: str | None) -> list[tuple[str, str]]:
    """(severity, message) of every change since the last cycle, for the event log."""
    events: list[tuple[str, str]] = []
    if compatibility != compatibility_before:
        events.append(("warning" if compatibility == "NONE" else "info",
                       f"global compatibility changed from {compatibility_before or 'unknown'} to "
                       f"{compatibility or 'unknown'}"))
    if mode != mode_before:
        events.append(("warning" if mode in RISKY_MODES else "info",
                       f"global mode changed from {mode_before or 'unknown'} to {mode or 'unknown'}"))
    for name, subject in after.items():
        old = before.get(name)
        if subject.versions is None:
            continue
        if old is None or old.versions is None:
            if old is None:
                events.append(("info", f"subject {name} registered: version {subject.latest_version} "
                                       f"(schema id {subject.latest_id}, {subject.schema_type})"))
            continue
        for version in sorted(set(subject.versions) - set(old.versions)):
            latest = f" (schema id {subject.latest_id})" if version == subject.latest_version else ""
            events.append(("info", f"subject {name}: version {version} registered{latest}"))
        for version in sorted(set(old.versions) - set(subject.versions)):
            events.append(("info", f"subject {name}: version {version} deleted"))
        if subject.compatibility_own and old.compatibility_own and subject.compatibility != old.compatibility \
                or subject.compatibility_own != old.compatibility_own:
            events.append(("warning" if subject.compatibility == "NONE" else "info",
                           f"subject {name}: compatibility changed from {old.compatibility or 'unknown'} to "
                           f"{subject.compatibility or 'unknown'}"))
        if subject.mode_own != old.mode_own or subject.mode_own and subject.mode != old.mode:
            events.append(("warning" if subject.mode in RISKY_MODES else "info",
                           f"subject {name}: mode changed from {old.mode or 'unknown'} "
                           f"to {subject.mode or 'unknown'}"))
    for name in sorted(vanished):
        how = "soft-deleted: still listed with ?deleted=true" if name in soft_deleted else "no longer listed"
        events.append(("info", f"subject {name} deleted ({how})"))
    return events


def warnings(compatibility: str | None, mode: str | None, subjects: dict[str, Subject], listed: int,
             max_subjects: int, karapace: KarapaceHealth | None) -> list[str]:
    """What the registry's settings put at risk, for the snapshot's warnings."""
    out = []
    if mode in RISKY_MODES:
        out.append(f"registry is in {mode} mode: {RISKY_MODES[mode]}")
    if compatibility == "NONE":
        out.append("global compatibility is NONE: any schema change is accepted, including breaking ones")
    for label, matching in (
        ("in READONLY, READONLY_OVERRIDE or IMPORT mode", [s.name for s in subjects.values()
                                                          if s.mode_own and s.mode in RISKY_MODES]),
        ("with compatibility NONE", [s.name for s in subjects.values()
                                     if s.compatibility_own and s.compatibility == "NONE"]),
    ):
        if matching:
            shown = ", ".join(matching[:5]) + (f" and {len(matching) - 5} more" if len(matching) > 5 else "")
            out.append(f"{len(matching)} subject(s) {label}: {shown}")
    if listed > max_subjects:
        out.append(f"{listed:,} subjects: only the first {max_subjects:,} (by name) are read "
                   f"in detail (max_subjects)")
    if karapace is not None and (not karapace.healthy or karapace.ready is False):
        out.append("Karapace reports itself " + ("not ready" if karapace.ready is False else "unhealthy"))
    return out

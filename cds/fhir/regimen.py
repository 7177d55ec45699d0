"""Imatinib regimen facts, dose history and levels (the inputs of the TDM rules and the PK estimator)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cds.fhir import parse
from cds.fhir.dosing import dose_mg, product
from cds.fhir.drafts import (
    Concurrent,
    DraftRegimen,
    clinician_name,
    compose,
    merge_concurrent,
    named,
    order_name,
)
from cds.fhir.index import ResourceIndex, source
from cds.fhir.labs import Labs, Want
from cds.fhir.medication import read_administration, read_request, read_statement
from cds.fhir.settings import MappingSettings
from cds.fhir.sink import FactSink
from cds.fhir.stated_dose import disagrees, stated_daily_mg
from cds.fhir.terminology import Concept, Terminology
from cds.fhir.therapy import (
    CURRENT,
    Segment,
    Therapy,
    current,
    history,
    request_therapy,
    segment_at,
    segments,
    statement_therapy,
)
from cds.fhir.types import DoseEvent, DoseSource, LevelSample, Source
from cds.fhir.unreadable import report_unreadable
from cds.numbers import format_number

Key = tuple[str, str]
_DAY = timedelta(days=1)
_TABLET_MG = 100  # every dose is a whole number of 100 mg (and 400 mg) tablets (clinical-rules.md §1.1)


@dataclass(frozen=True)
class DoseHistory:
    doses: tuple[DoseEvent, ...]
    source: DoseSource
    note: str


@dataclass(frozen=True)
class RegimenResult:
    draft_orders: tuple[dict[str, Any], ...]
    doses: DoseHistory
    levels: tuple[LevelSample, ...]
    draft_parts: tuple[str, ...] = ()  # each draft and its contribution to the regimen (for the trace)


class RegimenMapper:
    def __init__(
        self,
        index: ResourceIndex,
        sink: FactSink,
        terminology: Terminology,
        settings: MappingSettings,
        now: datetime,
    ) -> None:
        self.index, self.sink, self.settings, self.now = index, sink, settings, now
        self.imatinib = terminology["imatinib"]
        self.terminology = terminology
        self.lookback = timedelta(days=settings.new_start_lookback_days)

    def run(self, labs: Labs) -> RegimenResult:
        drafts = self._drafts()
        requests, statements = self._therapies("MedicationRequest"), self._therapies("MedicationStatement")
        together = merge_concurrent(history(requests, statements))
        names = {t.key: clinician_name(t) for t in (*requests, *statements, *drafts)}
        records = together.records
        runs = segments(records, self.now, self.lookback)
        active = current(records)
        ordered = compose(drafts, records, together.members, names) if drafts else None
        self._regimen_facts(ordered, together, runs, active, names)
        doses = self._dose_history(records)
        if doses.source == "none" and (drafts or records):
            self.sink.put("regimen.dose_times_known", False, [r.source for r in records[-1:]], doses.note)
        levels = self._levels(labs, doses, runs, active)
        parts = (*together.parts, *(p.describe({}) for p in ordered.parts)) if ordered else together.parts
        return RegimenResult(tuple(dict(self.index.raw(d.key)) for d in drafts), doses, levels, parts)

    # --- records ------------------------------------------------------------------------------------

    def _drafts(self) -> list[Therapy]:
        """The imatinib drafts to act on; on order-select, once one is selected, the other imatinib drafts of the
        order session too (they are part of the regimen being ordered: a 400 mg tablet selected next to a 100 mg
        tablet draft)."""
        found = []
        readable = set(self.index.keys("MedicationRequest"))  # of this patient
        selected = self.index.request.draft_keys
        for key in selected:
            if key not in readable:
                continue
            request = self.index.read(key, read_request)  # strict for an imatinib draft (cds/fhir/draft_drugs.py)
            if request is not None and product(self.index, key, request, self.imatinib).imatinib is not None:
                found.append(request_therapy(self.index, key, request, self.imatinib))
        others = [k for k in self.index.request.context_draft_keys if k not in selected and k in readable]
        for key in others if found else ():
            unselected = self.index.read(key, read_request)
            if unselected is not None and product(self.index, key, unselected, self.imatinib).imatinib is not None:
                found.append(request_therapy(self.index, key, unselected, self.imatinib))
        return found

    def _therapies(self, kind: str) -> list[Therapy]:
        read = read_request if kind == "MedicationRequest" else read_statement
        therapy = request_therapy if kind == "MedicationRequest" else statement_therapy
        drafts = set(self.index.request.context_draft_keys)
        out = []
        for key in self.index.keys(kind):
            resource = self.index.read(key, read)
            if resource is None or key in drafts:
                continue
            if product(self.index, key, resource, self.imatinib).imatinib is not None:
                out.append(therapy(self.index, key, resource, self.imatinib))
        return out

    # --- regimen facts ------------------------------------------------------------------------------

    def _regimen_facts(
        self,
        ordered: DraftRegimen | None,
        together: Concurrent,
        runs: list[Segment],
        active: Therapy | None,
        names: dict[Key, str],
    ) -> None:
        records = together.records
        regimen = self._ordered_regimen(ordered) if ordered else active
        if regimen is None:
            return
        if ordered is None:
            self._dosing_facts(regimen, "active", regimen.sources, "; ".join(together.parts))
            src = regimen.sources
        else:
            self._dosing_facts(regimen, "draft", ordered.sources, ordered.composition(), ordered.renewals())
            self._draft_facts(ordered)
            src = [p.therapy.source for p in ordered.parts]
        self._duplicate_facts([*(ordered.duplicates if ordered else ()), *together.duplicates], src, names)
        self._hold_facts(regimen, active)
        new_start = ordered is not None and not self._recent_therapy(records)
        self.sink.put("regimen.new_start", new_start, [regimen.source, *[r.source for r in records[-1:]]])
        if new_start:
            self._new_start_facts(regimen)
        else:
            self._course_facts(regimen, runs, ordered is not None)

    @staticmethod
    def _ordered_regimen(ordered: DraftRegimen) -> Therapy:
        """The drafts as one therapy: the first draft's dates and identity, the counted drafts' combined dose."""
        return replace(ordered.parts[0].therapy, dosing=ordered.dosing)

    def _dosing_facts(
        self, regimen: Therapy, status: str, src: list[Source], composition: str = "", renewals: str = ""
    ) -> None:
        self.sink.put("regimen.status", status, src, renewals)
        note = regimen.dosing.note if len(src) < 2 else composition
        if regimen.dosing.daily_mg is None:
            where = ", ".join(str(s) for s in src)
            self.index.warnings.append(f"regimen.daily_mg: not read from {where}: {regimen.dosing.note}")
        elif not self.sink.put("regimen.daily_mg", regimen.dosing.daily_mg, src, note):
            # a dose that cannot be one is a finding for the dose checks, not only a trace warning
            shown = f"{format_number(regimen.dosing.daily_mg)} mg/day"
            self.sink.put("regimen.dose_implausible", True, src, shown)
        if regimen.dosing.interval_h is not None:
            self.sink.put("regimen.interval_h", regimen.dosing.interval_h, src)
        elif regimen.dosing.daily_mg is not None and len(src) > 1:
            self.index.warnings.append("regimen.interval_h: the orders' timings do not give one dosing interval")
        self._tablet_facts(regimen, src)

    def _tablet_facts(self, regimen: Therapy, src: list[Source]) -> None:
        daily = self.sink.number("regimen.daily_mg")
        if daily is None or daily <= 0:
            return
        per_dose = daily * (regimen.dosing.interval_h or 24) / 24
        self.sink.put("regimen.whole_tablets", math.isclose(per_dose / _TABLET_MG, round(per_dose / _TABLET_MG)), src)

    def _draft_facts(self, ordered: DraftRegimen) -> None:
        """How many drafts make the regimen and how they add up; a draft whose text states another dose."""
        src = [p.therapy.source for p in ordered.parts]
        self.sink.put("regimen.draft_count", float(len(ordered.parts)), src)
        if len(ordered.parts) > 1 or ordered.continuing:
            self.sink.put("regimen.draft_parts", ordered.composition(), [*src, *ordered.sources])
        for part in ordered.parts:
            therapy = part.therapy
            concept = self.index.products[therapy.key].concept
            stated = stated_daily_mg([concept.text if concept else None, *(d.text for d in therapy.dosages)])
            if disagrees(stated, therapy.dosing.daily_mg):
                conflict = (
                    f"its text says {format_number(stated or 0)} mg/day, "
                    f"its dose fields give {format_number(therapy.dosing.daily_mg or 0)} mg/day"
                )
                self.sink.put("regimen.text_dose_conflict", conflict, [therapy.source])
                return

    def _duplicate_facts(self, duplicates: list[tuple[Key, Key]], src: list[Source], names: dict[Key, str]) -> None:
        """Possible duplicates, each counted once, named for the card as the prescriber knows them
        (IMA-REGIMEN-010); the note keeps the resource ids for reviewers."""
        self.sink.put("regimen.duplicate_order", bool(duplicates), src)
        if duplicates:
            pairs = dict.fromkeys(duplicates)
            shown = "; ".join(f"{named(a, names)} and {named(b, names)}" for a, b in pairs)
            ids = "; ".join(f"{order_name(a)} and {order_name(b)}" for a, b in pairs)
            self.sink.put("regimen.duplicate_orders", shown, src, f"same product and dose: {ids}")

    def _hold_facts(self, regimen: Therapy, active: Therapy | None) -> None:
        held = active is not None and active.status == "on-hold"
        self.sink.put("regimen.on_hold", held, [(active or regimen).source])
        if active is not None:
            self.sink.put("regimen.active_order", active.status == "active", [active.source])
        if held and active is not None and active.dosing.daily_mg is not None:
            self.sink.put("regimen.pre_hold_mg", active.dosing.daily_mg, [active.source], "dose of the order on hold")
        if held and active is not None and active.status_reason is not None:
            reason = active.status_reason
            self.sink.put("regimen.hold_reason", self._hold_reason(reason), [active.source], reason.label)

    def _new_start_facts(self, regimen: Therapy) -> None:
        src = [regimen.source]
        for name in ("regimen.days_on_therapy", "regimen.days_on_dose"):
            self.sink.put(name, 0.0, src, "new start")
        if regimen.dosing.daily_mg is not None:
            self.sink.put("regimen.starting_daily_mg", regimen.dosing.daily_mg, src, "new start")

    def _hold_reason(self, reason: Concept) -> str:
        for name in ("hepatotoxicity", "cytopenia", "non-haematological"):
            if self.terminology[f"hold-reason-{name}"].match(reason):
                return name
        return "other"

    def _recent_therapy(self, records: list[Therapy]) -> bool:
        for record in records:
            if record.status in CURRENT:
                return True
            if record.last_seen is not None and record.last_seen >= self.now - self.lookback:
                return True
        recent = [d for d in self._administrations() if d[1].time >= self.now - self.lookback]
        return bool(recent)

    def _course_facts(self, regimen: Therapy, runs: list[Segment], is_draft: bool) -> None:
        if not runs:
            return
        put, last = self.sink.put, runs[-1]
        put("regimen.days_on_therapy", _days(self.now - runs[0].start), [runs[0].therapy.source])
        if runs[0].daily_mg is not None:
            put("regimen.starting_daily_mg", runs[0].daily_mg, [runs[0].therapy.source])
        changed = is_draft and regimen.dosing.daily_mg != last.daily_mg
        if changed:
            put("regimen.days_on_dose", 0.0, [regimen.source], "the draft changes the daily dose")
            if last.daily_mg is not None:
                put("regimen.previous_daily_mg", last.daily_mg, [last.therapy.source], "dose before the draft")
                if regimen.dosing.daily_mg is not None:
                    increase = regimen.dosing.daily_mg > last.daily_mg
                    put("regimen.draft_increase", increase, [regimen.source, last.therapy.source])
            return
        put("regimen.days_on_dose", _days(self.now - last.start), [last.therapy.source])
        if len(runs) > 1 and runs[-2].daily_mg is not None:
            put("regimen.previous_daily_mg", runs[-2].daily_mg, [runs[-2].therapy.source])
            self._change_facts(runs[-2], last)

    def _change_facts(self, before: Segment, after: Segment) -> None:
        """Direction of the last change and why the previous dose ended (re-escalation gate, issue 13)."""
        if before.daily_mg is None or after.daily_mg is None or before.daily_mg == after.daily_mg:
            return
        src = [before.therapy.source, after.therapy.source]
        self.sink.put("regimen.last_change", "reduction" if after.daily_mg < before.daily_mg else "increase", src)
        reason = before.therapy.status_reason
        if reason is not None:
            self.sink.put(
                "regimen.last_change_reason", self._hold_reason(reason), [before.therapy.source], reason.label
            )

    # --- dose history -------------------------------------------------------------------------------

    def _dose_history(self, records: list[Therapy]) -> DoseHistory:
        since = self.now - timedelta(days=self.settings.dose_history_days)
        given = [d for d in self._administrations() if since <= d[1].time <= self.now]
        if given:
            return self._history(given, "administrations", "MedicationAdministration records")
        taken = self._statement_doses(since)
        if taken:
            return self._history(taken, "statements", "MedicationStatement dose times")
        regular = self._order_doses(records, since)
        if regular:
            note = (
                "the order's regimen assumed taken regularly since its start at timing.repeat.timeOfDay"
                " (clock times in the zone of the start date-time, UTC if it has none)"
            )
            return self._history(regular, "order-regimen", note)
        return DoseHistory((), "none", "no administrations, statements or timeOfDay give dose times")

    def _history(self, doses: list[tuple[Key, DoseEvent]], kind: DoseSource, note: str) -> DoseHistory:
        doses.sort(key=lambda d: d[1].time)
        last_key, last = doses[-1]
        last_source = source(last_key, last.time)  # every dose's source is its resource at the dose time
        self.sink.put("regimen.dose_times_known", True, [last_source], note)
        hours = (self.now - last.time).total_seconds() / 3600
        self.sink.put("regimen.hours_since_last_dose", hours, [last_source], f"last dose {last.time.isoformat()}")
        return DoseHistory(tuple(d for _, d in doses), kind, note)

    def _administrations(self) -> list[tuple[Key, DoseEvent]]:
        out = []
        for key in self.index.keys("MedicationAdministration"):
            given = self.index.read(key, read_administration)
            if given is None:
                continue
            drug = product(self.index, key, given, self.imatinib)
            if given.status not in ("completed", "in-progress") or drug.imatinib is None:
                continue
            when = parse.as_datetime(given.effective or (given.period.start if given.period else None))
            mg = dose_mg(given.dosages[0], drug.strength_mg)[0] if given.dosages else None
            if when is not None and mg is not None:
                out.append((key, DoseEvent(when, mg)))
        return out

    def _statement_doses(self, since: datetime) -> list[tuple[Key, DoseEvent]]:
        """A statement dated to an instant is a reported dose; a period with timeOfDay is a regular regimen."""
        out = []
        for key in self.index.keys("MedicationStatement"):
            statement = self.index.read(key, read_statement)
            if statement is None:
                continue
            drug = product(self.index, key, statement, self.imatinib)
            if statement.status in ("entered-in-error", "not-taken") or drug.imatinib is None:
                continue
            therapy = statement_therapy(self.index, key, statement, self.imatinib)
            point = parse.as_datetime(statement.effective)
            if point is not None and isinstance(statement.effective, datetime):  # an instant, not a day
                mg = dose_mg(statement.dosages[0], drug.strength_mg)[0] if statement.dosages else None
                if mg is not None and since <= point <= self.now:
                    out.append((key, DoseEvent(point, mg)))
            elif therapy.dosing.schedule:
                out += _expand(therapy, since, self.now)
        return out

    def _order_doses(self, records: list[Therapy], since: datetime) -> list[tuple[Key, DoseEvent]]:
        out = []
        for i, record in enumerate(records):
            if record.key[0] != "MedicationRequest" or not record.dosing.schedule or record.status == "on-hold":
                continue
            nxt = records[i + 1].start if i + 1 < len(records) else None
            out += _expand(record, since, min((t for t in (record.end, nxt, self.now) if t), default=self.now))
        return out

    # --- levels -------------------------------------------------------------------------------------

    def _levels(
        self, labs: Labs, doses: DoseHistory, runs: list[Segment], active: Therapy | None
    ) -> tuple[LevelSample, ...]:
        spec = self.sink.vocabulary["level.conc"]  # unit and molar mass as rules/facts.yaml declares them
        assert spec.unit is not None
        want = Want(spec.unit, self._max_age("level.conc"), spec.molar_mass_g_mol, spec.censorable, spec.accepts)
        report_unreadable(labs, self.sink, self.terminology["imatinib-level"], want, "level")
        readings = labs.readings(self.terminology["imatinib-level"], want)
        plausible = self.sink.vocabulary["level.conc"].accepts
        # a level below the LLOQ or above the ULOQ is a bound, not a concentration: never fitted (§9.1)
        exact = [r for r in reversed(readings) if r.side is None and plausible(r.value)]
        samples = tuple(LevelSample(r.time, r.value, r.source) for r in exact)
        if not readings:
            return samples
        latest = readings[0]
        if not self.sink.put("level.conc", latest.value, [latest.source], side=latest.side, reported=latest.reported):
            return samples
        self.sink.put("level.age_days", _days(self.now - latest.time), [latest.source])
        started = self.sink.facts.get("comed.cyp3a4_days_since_start")
        if started is not None and isinstance(started.value, float):
            before = _days(self.now - latest.time) > started.value  # drawn before the interacting drug began
            self.sink.put("level.before_interacting_drug", before, [latest.source, *started.sources])
        self._level_timing(latest.time, latest.source, doses, runs, active)
        return samples

    def _level_timing(
        self, drawn: datetime, src: Source, doses: DoseHistory, runs: list[Segment], active: Therapy | None
    ) -> None:
        run = segment_at(runs, drawn)
        if run is not None:
            self.sink.put("level.days_on_dose_at_draw", _days(drawn - run.start), [src, run.therapy.source])
        if runs:
            self.sink.put("level.on_current_dose", drawn >= runs[-1].start, [src, runs[-1].therapy.source])
        before = [d for d in doses.doses if d.time <= drawn]
        if not before:
            if doses.source != "none":
                self.index.warnings.append(f"level.hours_after_dose: no recorded dose before the sample {src}")
            return
        hours = (drawn - before[-1].time).total_seconds() / 3600
        self.sink.put("level.hours_after_dose", hours, [src], f"last dose {before[-1].time.isoformat()}")
        interval = (run.interval_h if run else None) or (active.dosing.interval_h if active else None)
        if interval is not None:
            self.sink.put("level.hours_from_trough", hours - interval, [src], f"interval {format_number(interval)} h")

    def _max_age(self, name: str) -> float | None:
        return self.settings.max_age_days.get(name, self.sink.vocabulary[name].max_age_days)


def _expand(record: Therapy, since: datetime, until: datetime | None) -> list[tuple[Key, DoseEvent]]:
    """Regular doses at the record's clock times from its start (not before ``since``) to ``until``."""
    if record.start is None:
        return []
    zone = record.start.tzinfo or UTC
    first, last = max(record.start, since), until or since
    day = first.astimezone(zone).date()
    # the same wall-clock time n days later, as datetime.combine(day + n days, clock, zone) would give
    firsts = [(datetime.combine(day, clock, tzinfo=zone), mg) for clock, mg in record.dosing.schedule]
    out, key, step = [], record.key, timedelta(0)
    for _ in range((last.astimezone(zone).date() - day).days + 1):
        for base, mg in firsts:
            when = base + step
            if first <= when <= last:
                out.append((key, DoseEvent(when, mg)))
        step += _DAY
    return out


def _days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400, 2)

"""Patient, body size, renal, hepatic and blood-count facts."""

from __future__ import annotations

from datetime import datetime, timedelta

from cds.fhir import derive, parse
from cds.fhir.findings import read_patient
from cds.fhir.index import ResourceIndex, source
from cds.fhir.labs import Labs, Reading, Want
from cds.fhir.settings import MappingSettings
from cds.fhir.sink import FactSink
from cds.fhir.terminology import Terminology
from cds.fhir.types import Source
from cds.fhir.unreadable import report_unreadable
from cds.numbers import format_number

BILIRUBIN_MOLAR_MASS = 584.66


class BodyMapper:
    def __init__(
        self,
        index: ResourceIndex,
        sink: FactSink,
        labs: Labs,
        terminology: Terminology,
        settings: MappingSettings,
        now: datetime,
    ) -> None:
        self.index, self.sink, self.labs = index, sink, labs
        self.terms, self.settings, self.now = terminology, settings, now
        self.patient_source: Source | None = None
        self.weight: Reading | None = None

    def run(self) -> None:
        self.patient()
        self.body_size()
        self.renal()
        self.hepatic()
        self.counts()

    def _max_age(self, name: str) -> float | None:
        return self.settings.max_age_days.get(name, self.sink.vocabulary[name].max_age_days)

    def _want(self, name: str) -> Want:
        """Canonical unit, maximum age and (for molar units) molar mass, as rules/facts.yaml declares them."""
        spec = self.sink.vocabulary[name]
        assert spec.unit is not None
        return Want(spec.unit, self._max_age(name), spec.molar_mass_g_mol, spec.censorable, spec.accepts)

    def _check(self, group: str, want: Want, kind: str) -> None:
        report_unreadable(self.labs, self.sink, self.terms[group], want, kind)

    def patient(self) -> None:
        keys = self.index.keys("Patient")
        if not keys:
            return
        patient = self.index.required(keys[0], read_patient)
        src = [source(keys[0], None)]
        self.patient_source = src[0]
        if patient.gender:
            self.sink.put("patient.sex", patient.gender, src)
        birth = parse.as_datetime(patient.birth_date)
        if birth is not None:
            self.sink.put("patient.age", float(derive.age_years(birth.date(), self.now.date())), src)

    def body_size(self) -> None:
        self._check("body-weight", self._want("patient.weight"), "weight")
        weights = self.labs.readings(self.terms["body-weight"], self._want("patient.weight"))
        height = self.labs.latest(self.terms["body-height"], self._want("patient.height"))
        if weights and self.sink.put("patient.weight", weights[0].value, [weights[0].source]):
            self.weight = weights[0]
            self._weight_gain(weights)
        if height is not None and self.sink.put("patient.height", height.value, [height.source]) and self.weight:
            bsa = derive.mosteller_bsa(self.weight.value, height.value)
            self.sink.put("patient.bsa", bsa, [self.weight.source, height.source], "Mosteller")

    def _weight_gain(self, weights: list[Reading]) -> None:
        latest = weights[0]
        window = timedelta(days=self.settings.weight_gain_window_days)
        earlier = [w for w in weights if timedelta(days=1) <= latest.time - w.time <= window]
        if earlier:
            base = earlier[-1]
            note = f"{format_number(latest.value)} kg vs {format_number(base.value)} kg on {base.time.date()}"
            self.sink.put("patient.weight_gain_7d", latest.value - base.value, [latest.source, base.source], note)

    def renal(self) -> None:
        want_cr = self._want("renal.creatinine")
        self._check("creatinine", want_cr, "creatinine")
        creatinine = self.labs.latest(self.terms["creatinine"], want_cr)
        if creatinine is not None and not self.sink.put(
            "renal.creatinine",
            creatinine.value,
            [creatinine.source],
            side=creatinine.side,
            reported=creatinine.reported,
        ):
            creatinine = None
        egfr = self.labs.latest(self.terms["egfr"], self._want("renal.egfr"))
        if egfr is not None and not self.sink.put(
            "renal.egfr", egfr.value, [egfr.source], "kept apart from CrCl", side=egfr.side
        ):
            egfr = None
        self._check("crcl-measured", self._want("renal.crcl"), "crcl")
        measured = self.labs.latest(self.terms["crcl-measured"], self._want("renal.crcl"))
        if measured is not None and self.sink.put("renal.crcl", measured.value, [measured.source], "measured"):
            self.sink.put("renal.crcl_method", "measured", [measured.source])
            return
        if creatinine is not None and self.settings.cockcroft_gault:
            self._cockcroft_gault(creatinine)
        if "renal.crcl" not in self.sink.facts and egfr is not None and self.settings.egfr_as_crcl:
            self._from_egfr(egfr)

    def _from_egfr(self, egfr: Reading) -> None:
        """Local policy (mapping.yaml egfr_as_crcl): eGFR x BSA / 1.73 when BSA is known, else eGFR as reported."""
        if egfr.side is not None:  # ">60" is no CrCl: the renal classes stay unknown (IMA-UNREAD-043 says so)
            self.index.warnings.append(f"renal.crcl: eGFR reported only as a bound ({egfr.shown}), not used as CrCl")
            return
        bsa = self.sink.facts.get("patient.bsa")
        if self.settings.egfr_deindex_by_bsa and bsa is not None and isinstance(bsa.value, float):
            crcl, method = egfr.value * bsa.value / 1.73, "egfr-bsa"
            sources = [egfr.source, *bsa.sources]
            note = (
                f"from eGFR {format_number(egfr.value)} mL/min/1.73 m2 x BSA {format_number(bsa.value)} m2 / 1.73"
                " (Mosteller; local policy, no CrCl or creatinine usable)"
            )
        else:
            crcl, method, sources = egfr.value, "egfr", [egfr.source]
            why = "no height or weight for BSA" if self.settings.egfr_deindex_by_bsa else "de-indexing switched off"
            note = f"eGFR {format_number(egfr.value)} mL/min/1.73 m2 used as reported ({why}; local policy)"
        how = f"from eGFR {format_number(egfr.value)} mL/min/1.73 m2" + (" and BSA" if method == "egfr-bsa" else "")
        if self.sink.put("renal.crcl", crcl, sources, note, computed=how):
            self.sink.put("renal.crcl_method", method, sources, note)

    def _cockcroft_gault(self, creatinine: Reading) -> None:
        if creatinine.side is not None:
            self.index.warnings.append(
                f"renal.crcl: Cockcroft-Gault not computed, creatinine reported only as a bound ({creatinine.shown})"
            )
            return
        age, sex = self.sink.number("patient.age"), self.sink.value("patient.sex")
        weight = self.weight
        missing = [n for n, v in (("age", age), ("weight", weight)) if v is None]
        if sex not in ("male", "female"):
            missing.append("sex male/female")
        if age is None or weight is None or missing or sex not in ("male", "female"):
            self.index.warnings.append(f"renal.crcl: Cockcroft-Gault not computed, missing {', '.join(missing)}")
            return
        if age < self.settings.cg_min_age_years:  # the formula was derived in adults (clinical-rules.md §9.2)
            warning = f"renal.crcl: Cockcroft-Gault not computed, not valid at age {format_number(age)}"
            self.index.warnings.append(warning)
            return
        if not self._recent(creatinine, self.settings.cg_creatinine_max_age_days) or not self._recent(
            weight, self.settings.cg_weight_max_age_days
        ):
            self.index.warnings.append("renal.crcl: Cockcroft-Gault not computed, creatinine or weight too old")
            return
        crcl = derive.cockcroft_gault(age, weight.value, creatinine.value, str(sex))
        sources = [creatinine.source, weight.source, *([self.patient_source] if self.patient_source else [])]
        note = f"Cockcroft-Gault, actual body weight {weight.value:.1f} kg, SCr {format_number(creatinine.value)} mg/dL"
        scr = creatinine.reported or f"{format_number(creatinine.value)} mg/dL"
        how = f"Cockcroft-Gault: creatinine {scr}, weight {weight.value:.1f} kg, age {format_number(age)}"
        if self.sink.put("renal.crcl", crcl, sources, note, computed=how):
            self.sink.put("renal.crcl_method", "cockcroft-gault", sources)

    def _recent(self, reading: Reading, days: float) -> bool:
        return self.now - reading.time <= timedelta(days=days)

    def hepatic(self) -> None:
        bili = self._xuln("bilirubin", "hepatic.bilirubin_xuln", "mg/dL", BILIRUBIN_MOLAR_MASS)
        ast = self._xuln("ast", "hepatic.ast_xuln", "U/L")
        alt = self._xuln("alt", "hepatic.alt_xuln", "U/L")
        present = [r for r in (ast, alt) if r is not None]
        if present:
            value, side, src = _highest(present)
            self.sink.put("hepatic.transaminases_xuln", value, src, "higher of AST and ALT", side=side)
        if any(r[2] is not None for r in (bili, ast) if r is not None):
            self.index.warnings.append("hepatic.odwg_class: not computed, bilirubin or AST reported only as a bound")
            return
        grade = derive.odwg_class(bili[0] if bili else None, ast[0] if ast else None)
        if grade is not None:
            sources = [r[1] for r in (bili, ast) if r is not None]
            self.sink.put("hepatic.odwg_class", grade, sources, "NCI-ODWG from bilirubin and AST")

    def _xuln(self, group: str, name: str, unit: str, molar: float | None = None) -> _Ratio | None:
        want = Want(unit, self._max_age(name), molar, censorable=True)
        self._check(group, want, group)
        reading = self.labs.latest(self.terms[group], want)
        if reading is None:
            return None
        uln, note = reading.uln, "ULN from referenceRange.high"
        fallback = self.settings.uln_fallback.get(group)
        if uln is None and fallback is not None:
            uln, note = _fallback_uln(fallback.value, fallback.unit, unit, molar), "ULN from the local table"
        if uln is None or uln <= 0:
            self.index.warnings.append(f"{name}: no upper limit of normal for {reading.source}")
            return None
        ratio = reading.value / uln
        if not self.sink.put(name, ratio, [reading.source], note, side=reading.side):
            return None
        return ratio, reading.source, reading.side

    def counts(self) -> None:
        for group, name in (("anc", "heme.anc"), ("platelets", "heme.platelets")):
            self._check(group, self._want(name), group)
            reading = self.labs.latest(self.terms[group], self._want(name))
            if reading is not None:
                self.sink.put(name, reading.value, [reading.source], side=reading.side, reported=reading.reported)


_Ratio = tuple[float, Source, str | None]  # multiple of ULN, its source, its censoring side


def _highest(ratios: list[_Ratio]) -> tuple[float, str | None, list[Source]]:
    """The larger of AST and ALT when either may be a bound: the interval of max(a, b) from theirs, written
    back as a value or a one-sided bound that still holds (all exact: the plain maximum and its source)."""
    lows = [r for r in ratios if r[2] in (None, "above", "at-or-above")]
    highs = [r for r in ratios if r[2] in (None, "below", "at-or-below")]
    every = [src for _, src, _ in ratios]
    if len(highs) < len(ratios):  # some value is unbounded above: so is the maximum
        value, _, side = max(lows, key=lambda r: (r[0], r[2] == "above"))
        return value, "above" if side == "above" else "at-or-above", every
    value, src, side = max(highs, key=lambda r: (r[0], {None: 2, "at-or-below": 1}.get(r[2], 0)))
    if side is None:  # an exact value at least as high as every bound below (ties prefer the exact one)
        return value, None, [src]
    return value, side, every


def _fallback_uln(value: float, unit: str, target: str, molar: float | None) -> float | None:
    from cds.fhir.quantities import to_unit
    from cds.units import UnitError

    try:
        return to_unit(value, unit, target, molar_mass_g_mol=molar)
    except UnitError:
        return None

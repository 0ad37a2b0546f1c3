"""Orchestration: patients -> studies -> series -> files, plus reports, faults and truth.

Patients are generated one at a time, in index order, each from its own
seeded generator; only per-partner counters (accession numbers), a few
"coverage" flags and the fault material live across patients, so memory does
not grow with N. A handful of early choices are forced ("coverage") so that
even a 5-patient run contains every modality, both transfer-syntax variants,
a shared patient, a patient without national ID and reports in all three
languages.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from . import dicom_factory, reports
from .faults import FaultMaterial, make_faults
from .model import PatientAtPartner, Staff, Study
from .partners import BY_COUNTRY, PARTNERS, Partner
from .people import (
    NameForm,
    Person,
    format_cpf,
    hospital_style,
    is_female,
    make_person,
    physician_pn,
    physician_pool,
    spelling_variant,
    strip_accents,
)
from .protocols import MODALITIES, PROTOCOLS, Protocol
from .rng import derive, permute, rng, weighted
from .truth import SCHEMA_VERSION, TruthWriter

SHARED_SHARE = 0.12
NO_ID_SHARE = 0.05
REPORT_SHARE = 0.9
TS_WEIGHTS = {str(ExplicitVRLittleEndian): 0.85, str(ImplicitVRLittleEndian): 0.10, str(RLELossless): 0.05}
LAST_DAY = date(2025, 10, 31)


class Coverage:
    """Forces the first occurrences of required values, then gets out of the way."""

    def __init__(self) -> None:
        self.want: dict[str, list[str]] = {}

    def require(self, category: str, values: list[str]) -> None:
        self.want[category] = list(values)

    def take(self, category: str, allowed: list[str] | None = None) -> str | None:
        """The first still-wanted value (among ``allowed``), marked as covered, or None."""
        for v in self.want.get(category, []):
            if allowed is None or v in allowed:
                self.want[category].remove(v)
                return v
        return None

    def seen(self, category: str, value: str) -> None:
        if value in self.want.get(category, []):
            self.want[category].remove(value)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", strip_accents(s)).strip("_")


def _doctor_pn(name: NameForm) -> str:
    return physician_pn(name, "Dra." if is_female(name) else "Dr.")


class _Run:
    def __init__(self, out: Path, n: int, seed: int, faults: bool,
                 progress: Callable[[str], None] | None) -> None:
        self.out, self.n, self.seed, self.faults_on, self.progress = out, n, seed, faults, progress
        self.cov = Coverage()
        self.cov.require("modality", ["MG", "CT", "MR", "US", "CR", "DX"])
        for p in PARTNERS:
            self.cov.require(f"ts:{p.id}", [str(ImplicitVRLittleEndian), str(RLELossless)])
            self.cov.require(f"lang:{p.id}", [p.language, "en"])
            self.cov.require(f"fmt:{p.id}", ["txt", "pdf"])
            self.cov.require(f"enc:{p.id}", ["utf-8", "cp1252"])
        self.counter = {p.id: 0 for p in PARTNERS}
        self.files = {p.id: 0 for p in PARTNERS}
        self.dicom_files = 0
        self.report_files = 0
        self.studies = {p.id: 0 for p in PARTNERS}
        self.bytes = 0
        self.shared = 0
        self.material = {p.id: FaultMaterial() for p in PARTNERS}
        self.staff = {}
        for p in PARTNERS:
            self.staff[p.id] = {
                "referring": physician_pool(seed, p.id, p.country, "referring", 30),
                "radiologist": physician_pool(seed, p.id, p.country, "radiologist", 8),
                "technologist": physician_pool(seed, p.id, p.country, "technologist", 10),
            }
        self.by_modality: dict[str, list[Protocol]] = {m: [] for m in MODALITIES}
        for proto in PROTOCOLS:
            for m in proto.modalities:
                self.by_modality[m].append(proto)
        self.truth = TruthWriter(out, {
            "schema_version": SCHEMA_VERSION,
            "generator": "synth",
            "seed": seed,
            "n_patients": n,
            "faults_enabled": faults,
            "partners": {p.id: {"country": p.country, "code": p.code, "institution": p.institution,
                                "institution_dicom": p.institution_dicom, "language": p.language,
                                "reports_dir": p.reports_dir, "national_id_issuer": p.national_issuer,
                                "private_creator": p.private_creator}
                         for p in PARTNERS},
            "conventions": {
                "patient_id": "PatientID = hospital MRN, IssuerOfPatientID = hospital code",
                "national_id": "OtherPatientIDsSequence item: PatientID = number, IssuerOfPatientID "
                               "RNEC (Colombian CC) or RFB (Brazilian CPF), TypeOfPatientID TEXT",
                "phi": "exact strings as written; files[*].phi per file, phi_values deduplicated",
                "quasi_identifiers": "PatientAge/Sex/Size/Weight: kept by Retain Patient Characteristics",
            },
        })

    # -- patients ---------------------------------------------------------

    def patient_plan(self, i: int) -> tuple[Person, list[Partner], int]:
        r = rng(self.seed, "plan", i)
        home = "co" if i == 0 else "br" if i in (1, 2) else r.choice(["co", "br"])
        has_id = i != 3 and not (i > 4 and r.random() < NO_ID_SHARE)
        shared = has_id and (i == 1 or (i > 4 and r.random() < SHARED_SHARE))
        kwargs: dict[str, Any] = {}
        if i == 0:
            kwargs = {"sex": "F", "age_range": (48, 70)}
        person = make_person(i, self.seed, home, has_id=has_id, **kwargs)
        n_studies = r.choices([1, 2, 3, 4], weights=[0.45, 0.33, 0.15, 0.07])[0]
        if i == 0:
            n_studies = 3
        elif i < 3 or shared:
            n_studies = max(2, n_studies)
        partners = [BY_COUNTRY[home]]
        if shared:
            partners.append(BY_COUNTRY["br" if home == "co" else "co"])
        return person, partners, n_studies

    def at_partner(self, person: Person, partner: Partner, home: bool, home_form: NameForm | None,
                   ) -> PatientAtPartner:
        r = rng(self.seed, "registration", person.index, partner.id)
        spelling: tuple[str, ...] = ()
        if home or home_form is None:
            form = hospital_style(r, partner.country, person.name)
        else:
            form, ops = spelling_variant(r, home_form)
            spelling = tuple(ops)
        idx = person.index
        if partner.country == "co":
            mrn = str(1_000_000 + permute(idx, 9_000_000, self.seed, "mrn-co"))
        else:
            mrn = f"{permute(idx, 10**8, self.seed, 'mrn-br'):010d}"
        nid = person.id_number
        if nid and person.id_type == "CPF" and r.random() < 0.4:
            nid = format_cpf(nid)
        other = None
        if r.random() < 0.15:
            other = strip_accents(form.pn()).upper() if strip_accents(form.pn()) != form.pn() else None
        if not home and home_form is not None and r.random() < 0.5:
            other = home_form.pn()  # the spelling the patient gave elsewhere, kept as an alias
        return PatientAtPartner(partner=partner, person=person, name=form, spelling=spelling, mrn=mrn,
                                national_id_written=nid, other_names=other)

    # -- studies ----------------------------------------------------------

    def pick_protocol(self, r, pat: PatientAtPartner, day: date) -> tuple[Protocol, str]:
        person = pat.person
        age = day.year - person.birth_date.year

        def ok(p: Protocol) -> bool:
            return (p.sex is None or p.sex == person.sex) and age >= p.min_age

        allowed = [m for m in MODALITIES if any(ok(p) for p in self.by_modality[m])]
        forced = self.cov.take("modality", allowed)
        if forced:
            cands = [p for p in self.by_modality[forced] if ok(p)]
            code = weighted(r, {p.code: p.weight for p in cands})
            return next(p for p in cands if p.code == code), forced
        cands = [p for p in PROTOCOLS if ok(p)]
        code = weighted(r, {p.code: p.weight for p in cands})
        proto = next(p for p in cands if p.code == code)
        modality = proto.modalities[0] if len(proto.modalities) == 1 else r.choice(proto.modalities)
        self.cov.seen("modality", modality)
        return proto, modality

    def pick(self, category: str, r, weights: dict[str, float]) -> str:
        forced = self.cov.take(category)
        if forced:
            return forced
        v = weighted(r, weights)
        self.cov.seen(category, v)
        return v

    def make_study(self, pat: PatientAtPartner, number: int, day: date, prior: date | None) -> Study:
        p = pat.partner
        r = rng(self.seed, "study", pat.person.index, p.id, number)
        proto, modality = self.pick_protocol(r, pat, day)
        device = r.choice(p.devices[modality])
        fcode = weighted(r, {f.code: f.weight for f in proto.findings})
        finding = next(f for f in proto.findings if f.code == fcode)
        self.counter[p.id] += 1
        c = self.counter[p.id]
        night = proto.code == "CT_HEAD" and r.random() < 0.4
        hh = r.randint(0, 6) if night else r.randint(7, 19)
        st = f"{hh:02d}{r.randint(0, 59):02d}{r.randint(0, 59):02d}"
        if p.country == "co":
            accession = f"CA{day.year % 100:02d}{c:07d}"
            study_id = f"E{100000 + c}"
        else:
            accession = f"{day.year}{c:08d}"
            study_id = f"EX{c:06d}"
        staff = self.staff[p.id]
        ref = r.choice(staff["referring"])
        rad = r.choice(staff["radiologist"])
        rad_idx = staff["radiologist"].index(rad)
        tech = r.choice(staff["technologist"])
        pref_ref = "Dra." if is_female(ref) else "Dr."
        pref_rad = "Dra." if is_female(rad) else "Dr."
        ref_pn = physician_pn(ref, pref_ref)
        rad_pn = physician_pn(rad, pref_rad)
        title_ref = replace(ref, upper=False)
        title_rad = replace(rad, upper=False)
        lic = (f"{derive(self.seed, 'lic', p.id, rad_idx) % 90000 + 10000}" if p.country == "co"
               else f"{derive(self.seed, 'lic', p.id, rad_idx) % 900000 + 100000}")
        staff_rec = Staff(
            referring=ref_pn, requesting=ref_pn if r.random() < 0.7 else _doctor_pn(r.choice(staff["referring"])),
            performing=rad_pn, reading=rad_pn, operator=tech.pn(),
            referring_display=f"{pref_ref} {title_ref.display()}", reading_display=f"{pref_rad} {title_rad.display()}",
            reading_license=lic,
        )
        desc = proto.study_desc[p.country]
        has_name = r.random() < 0.1
        if has_name:
            desc = f"{desc} {pat.name.surname()}"
        department = p.departments[3] if modality == "MG" else r.choice(p.departments[:3])
        charset = "ISO_IR 100" if r.random() < (0.6 if p.country == "co" else 0.5) else "ISO_IR 192"
        lang = self.pick(f"lang:{p.id}", r, {p.language: 1 - p.english_share, "en": p.english_share})
        fmt = None
        forced_report = self.cov.want.get(f"lang:{p.id}") or self.cov.want.get(f"fmt:{p.id}")
        if forced_report or r.random() < REPORT_SHARE:
            fmt = self.pick(f"fmt:{p.id}", r, {"txt": 0.5, "pdf": 0.5})
        enc = "utf-8"
        if fmt == "txt":
            enc = self.pick(f"enc:{p.id}", r, {"utf-8": 0.7, "cp1252": 0.2, "latin-1": 0.1})
        return Study(
            number=number, patient=pat, protocol=proto, modality=modality, device=device, finding=finding,
            study_date=day, study_time=st, accession=accession, study_id=study_id,
            requested_procedure_id=f"RP{c:07d}", sps_id=f"SPS{c:07d}",
            study_uid=dicom_factory.make_uid(p.study_uid_root, self.seed,
                                             dicom_factory.at(day, st), accession, "study"),
            charset=charset, department=department, staff=staff_rec, study_description=desc,
            description_has_name=has_name, language=lang, report_format=fmt, report_encoding=enc,
            prior_date=prior,
        )

    def ts_pick(self, partner_id: str) -> str:
        r = rng(self.seed, "ts", partner_id, self.files[partner_id], self.counter[partner_id])
        return self.pick(f"ts:{partner_id}", r, TS_WEIGHTS)

    # -- writing ----------------------------------------------------------

    def write(self, relpath: str, data: bytes) -> str:
        path = self.out / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.bytes += len(data)
        return hashlib.sha256(data).hexdigest()

    def dicom_path(self, study: Study, series: dicom_factory.SeriesPlan, inst: int) -> str:
        pat = study.patient
        p = pat.partner
        if p.country == "co":
            return (f"{p.id}/{pat.mrn}/{study.study_date:%Y%m%d}_{study.accession}/"
                    f"S{series.number:03d}_{_slug(series.description)}/IM{inst:04d}.dcm")
        surname = _slug(strip_accents(pat.name.surname()).upper())
        return (f"{p.id}/PACIENTES/{pat.mrn}_{surname}/{study.study_date:%Y-%m-%d}_{study.modality}_"
                f"{study.accession}/SE{series.number:04d}/IMG{inst:05d}")

    def report_path(self, study: Study) -> str:
        p = study.patient.partner
        ext = study.report_format
        if p.country == "co":
            return f"{p.id}/{p.reports_dir}/{study.study_date.year}/INF_{study.accession}.{ext}"
        return (f"{p.id}/{p.reports_dir}/{study.study_date.year}/{study.study_date.month:02d}/"
                f"laudo_{study.accession}_{study.patient.mrn}.{ext}")

    def base_entry(self, study: Study, kind: str) -> dict[str, Any]:
        pat = study.patient
        return {
            "partner": pat.partner.id, "kind": kind, "patient_key": pat.person.key,
            "national_id": pat.person.id_number, "national_id_type": pat.person.id_type,
            "mrn": pat.mrn, "accession": study.accession, "study_uid": study.study_uid,
            "modality": study.modality, "body_region": study.protocol.body_region,
            "study_date": study.study_date.strftime("%Y%m%d"), "protocol": study.protocol.code,
        }

    @staticmethod
    def path_phi(relpath: str, candidates: list[str]) -> list[str]:
        return sorted({v for v in candidates if len(v) >= 4 and v in relpath})

    def write_study(self, study: Study) -> list[str]:
        p = study.patient.partner
        r = rng(self.seed, "series", study.accession)
        written: list[str] = []
        for series in dicom_factory.plan_series(study, self.seed, r, self.ts_pick):
            writer = dicom_factory.SeriesWriter(study, series, self.seed)
            for inst in range(1, series.count + 1):
                w = writer.instance(inst)
                rel = self.dicom_path(study, series, inst)
                sha = self.write(rel, w.data)
                phi_vals = sorted(set(w.phi.values()))
                surname_path = strip_accents(study.patient.name.surname()).upper()
                entry = self.base_entry(study, "dicom")
                entry.update({
                    "series_uid": w.series_uid, "sop_uid": w.sop_uid, "sop_class": w.sop_class,
                    "transfer_syntax": w.transfer_syntax, "series_number": series.number,
                    "instance_number": inst, "frames": w.frames, "charset": study.charset,
                    "body_part": study.protocol.body_part,
                    "burned_in_annotation": bool(w.burned_in_phi),
                    "phi": phi_vals, "tags": w.phi, "burned_in_phi": w.burned_in_phi,
                    "burned_in_text": w.burned_in_text,
                    "path_phi": self.path_phi(rel, phi_vals + [surname_path]),
                    "quasi_identifiers": w.quasi, "bytes": len(w.data), "sha256": sha,
                })
                self.truth.add_file(rel, entry)
                written.append(rel)
                self.files[p.id] += 1
                self.dicom_files += 1
                m = self.material[p.id]
                if m.dicom is None and series.count >= 2 and w.transfer_syntax == str(ExplicitVRLittleEndian):
                    m.dicom, m.dicom_relpath, m.dicom_study = w, rel, study
        report_rel = None
        if study.report_format:
            rep = reports.render(study, rng(self.seed, "report", study.accession))
            if study.report_format == "pdf":
                data = reports.pdf_bytes(rep, study)
            else:
                data = reports.encode_txt(rep.text, study.report_encoding)
            report_rel = self.report_path(study)
            sha = self.write(report_rel, data)
            entry = self.base_entry(study, "report")
            entry.update({
                "language": rep.language, "format": study.report_format,
                "encoding": study.report_encoding if study.report_format == "txt" else None,
                "finding": study.finding.code, "labels": study.finding.labels,
                "phi": rep.phi, "path_phi": self.path_phi(report_rel, rep.phi),
                "bytes": len(data), "sha256": sha,
            })
            self.truth.add_file(report_rel, entry)
            written.append(report_rel)
            self.files[p.id] += 1
            self.report_files += 1
            m = self.material[p.id]
            if m.report is None:
                m.report, m.report_relpath, m.report_study = rep, report_rel, study
        self.truth.add("findings", None, {
            "partner": p.id, "accession": study.accession, "study_uid": study.study_uid,
            "patient_key": study.patient.person.key, "modality": study.modality,
            "body_region": study.protocol.body_region, "body_part": study.protocol.body_part,
            "protocol": study.protocol.code, "finding": study.finding.code,
            "finding_text": study.finding.text[study.language][1],
            "labels": study.finding.labels, "language": study.language,
            "report": report_rel, "study_date": study.study_date.strftime("%Y%m%d"),
            "n_instances": len(written) - (1 if report_rel else 0),
        })
        self.studies[p.id] += 1
        return written

    def do_patient(self, i: int) -> None:
        person, partners, n_studies = self.patient_plan(i)
        r = rng(self.seed, "timeline", i)
        first_year = max(2015, min(2025, person.birth_date.year + 18))
        years = sorted(r.sample(range(first_year, 2026), min(n_studies, 2026 - first_year)))
        days = []
        for y in years:
            start = date(y, 1, 2)
            end = min(date(y, 12, 28), LAST_DAY)
            days.append(start + timedelta(days=r.randint(0, max(0, (end - start).days))))
        # which partner each study happens at (a shared patient visits both)
        where = [0] * len(days)
        if len(partners) == 2:
            where = [r.randint(0, 1) for _ in days]
            if len(set(where)) < 2:
                where[-1] = 1 - where[0]
        regs: list[PatientAtPartner] = []
        home = self.at_partner(person, partners[0], True, None)
        regs.append(home)
        if len(partners) == 2:
            regs.append(self.at_partner(person, partners[1], False, home.name))
        files_at: dict[str, list[str]] = {reg.partner.id: [] for reg in regs}
        counts: dict[str, int] = {reg.partner.id: 0 for reg in regs}
        prior: date | None = None
        for k, day in enumerate(days):
            reg = regs[where[k]]
            counts[reg.partner.id] += 1
            study = self.make_study(reg, counts[reg.partner.id], day, prior if r.random() < 0.5 else None)
            files_at[reg.partner.id].extend(self.write_study(study))
            prior = day
        self.truth.add("patients", person.key, {
            "home_country": person.country, "national_id": person.id_number,
            "national_id_type": person.id_type, "sex": person.sex,
            "birth_date": person.birth_date.strftime("%Y%m%d"),
            "partners": {reg.partner.id: {"mrn": reg.mrn, "patient_name": reg.pn,
                                          "spelling_changes": list(reg.spelling),
                                          "studies": counts[reg.partner.id]} for reg in regs},
        })
        if len(regs) == 2 and person.id_number:
            self.shared += 1
            self.truth.add("shared_patients", person.id_number, {
                "patient_key": person.key, "national_id_type": person.id_type,
                "names": {reg.partner.id: reg.pn for reg in regs},
                "mrns": {reg.partner.id: reg.mrn for reg in regs},
                "spelling_changes": list(regs[1].spelling),
                "files": files_at,
            })

    def do_faults(self) -> int:
        n = 0
        for p in PARTNERS:
            for f in make_faults(p.id, p.country, p.reports_dir, self.material[p.id], self.seed):
                sha = self.write(f.relpath, f.data)
                entry: dict[str, Any] = {"partner": p.id, "kind": "fault", "fault": f.fault,
                                         "expected": f.expected, "reason": f.reason, "phi": f.phi,
                                         "bytes": len(f.data), "sha256": sha}
                if f.study is not None:
                    base = self.base_entry(f.study, "fault")
                    base.update(entry)
                    entry = base
                self.truth.add_file(f.relpath, entry)
                self.truth.add("faults", None, {"path": f.relpath, "partner": p.id, "fault": f.fault,
                                                "expected": f.expected, "reason": f.reason})
                self.files[p.id] += 1
                n += 1
        return n


def generate(out: Path, patients: int, seed: int, faults: bool = True,
             progress: Callable[[str], None] | None = None, *, overwrite: bool = False) -> dict:
    """Write two partners' synthetic exports and ``OUT/truth.json``; return a summary.

    ``out`` must not already hold a generated tree (its partner folders or
    truth file) unless ``overwrite`` is true, in which case only those are
    replaced. Same ``seed`` and ``patients``: byte-identical tree.
    """
    if patients < 1:
        raise ValueError("patients must be at least 1")
    out = Path(out)
    ours = [out / p.id for p in PARTNERS] + [out / "truth.json", out / "truth.json.partial", out / ".truth-tmp"]
    existing = [x for x in ours if x.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds generated data ({existing[0].name}); use overwrite")
    for x in existing:
        shutil.rmtree(x) if x.is_dir() else x.unlink()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    run = _Run(out, patients, seed, faults, progress)
    try:
        step = max(1, patients // 20)
        for i in range(patients):
            run.do_patient(i)
            if progress and ((i + 1) % step == 0 or i + 1 == patients):
                progress(f"{i + 1}/{patients} patients, {sum(run.files.values())} files")
        n_faults = run.do_faults() if faults else 0
        summary = {
            "patients": patients, "studies": dict(run.studies), "files": dict(run.files),
            "dicom_files": run.dicom_files, "reports": run.report_files, "faults": n_faults,
            "shared_patients": run.shared, "bytes": run.bytes,
        }
        truth_path = run.truth.close(summary)
    except BaseException:
        run.truth.abort()
        raise
    summary = dict(summary, out=str(out), truth=str(truth_path),
                   seconds=round(time.monotonic() - t0, 2))
    return summary

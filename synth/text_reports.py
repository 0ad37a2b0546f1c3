"""Generated radiology reports with planted PHI, for measuring the text scrubber.

Reports in Spanish (Colombia, Argentina, Chile, Ecuador), Portuguese (Brazil)
and English (US) with PHI planted at known offsets -- names from Faker's
locale lists (not from the scrubber's gazetteers), national IDs with valid
check digits, MRNs, accession numbers, dates in the usual written forms,
phones, addresses, e-mails, hospitals. Names also appear in prose without a
header ("... la paciente Amparo Arenas refiere ..."), where pattern
recognizers are weakest.

Faker is a test/demo dependency, so this lives outside the product package;
the scoring is :func:`anonymization.text_eval.score`.

    .venv/bin/python -m synth.text_reports [--n 300] [--no-ner]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random

from anonymization.text_eval import Planted, Sample, score

MONTHS = {
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"],
    "pt": ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro", "novembro", "dezembro"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"],
}
LOCALES = {"co": ("es", "es_CO"), "ar": ("es", "es_AR"), "cl": ("es", "es_CL"), "ec": ("es", "es_CO"), "br": ("pt", "pt_BR"), "us": ("en", "en_US")}


class _Builder:
    """Concatenates text pieces and records where the PHI pieces land."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.planted: list[Planted] = []
        self.pos = 0

    def add(self, s: str) -> "_Builder":
        self.parts.append(s)
        self.pos += len(s)
        return self

    def phi(self, typ: str, s: str) -> "_Builder":
        self.planted.append(Planted(typ, self.pos, self.pos + len(s)))
        return self.add(s)

    @property
    def text(self) -> str:
        return "".join(self.parts)


# ------------------------------------------------------------ identifiers


def _cpf(rng: random.Random, formatted: bool = True) -> str:
    d = [rng.randint(0, 9) for _ in range(9)]
    for n in (9, 10):
        d.append((sum(d[i] * (n + 1 - i) for i in range(n)) * 10) % 11 % 10)
    s = "".join(map(str, d))
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}" if formatted else s


def _rut(rng: random.Random) -> str:
    body = rng.randint(5_000_000, 25_000_000)
    total, factor = 0, 2
    for c in reversed(str(body)):
        total += int(c) * factor
        factor = 2 if factor == 7 else factor + 1
    r = 11 - total % 11
    dv = "0" if r == 11 else "K" if r == 10 else str(r)
    return f"{body:,}".replace(",", ".") + "-" + dv


def _ec_cedula(rng: random.Random) -> str:
    d = [int(c) for c in f"{rng.randint(1, 24):02d}"] + [rng.randint(0, 5)] + [rng.randint(0, 9) for _ in range(6)]
    total = 0
    for i, v in enumerate(d):
        v = v * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    d.append((10 - total % 10) % 10)
    return "".join(map(str, d))


def _cuit(rng: random.Random) -> str:
    while True:
        d = [int(c) for c in rng.choice(["20", "27", "23"])] + [rng.randint(0, 9) for _ in range(8)]
        r = 11 - sum(a * b for a, b in zip(d, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2])) % 11
        if r == 10:
            continue
        d.append(0 if r == 11 else r)
        s = "".join(map(str, d))
        return f"{s[:2]}-{s[2:10]}-{s[10]}"


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def national_id(country: str, rng: random.Random) -> tuple[str, str]:
    """(label, number) of a national document of ``country``."""
    if country == "co":
        n = rng.randint(10_000_000, 1_100_000_000)
        return rng.choice(["C.C.", "CC", "Cédula"]), rng.choice([f"{n:,}".replace(",", "."), str(n)])
    if country == "ar":
        if rng.random() < 0.5:
            n = rng.randint(10_000_000, 45_000_000)
            return "DNI", rng.choice([f"{n:,}".replace(",", "."), str(n)])
        return "CUIT", _cuit(rng)
    if country == "cl":
        return rng.choice(["RUT", "RUN"]), _rut(rng)
    if country == "ec":
        return rng.choice(["C.I.", "Cédula"]), _ec_cedula(rng)
    if country == "br":
        return "CPF", _cpf(rng, formatted=rng.random() < 0.8)
    return "SSN", _ssn(rng)


def _date_text(d: dt.date, lang: str, rng: random.Random) -> str:
    style = rng.randint(0, 4)
    if style == 0:
        return d.strftime("%d/%m/%Y") if lang != "en" else d.strftime("%m/%d/%Y")
    if style == 1:
        return d.strftime("%Y-%m-%d")
    if style == 2:
        m = MONTHS[lang][d.month - 1]
        return f"{m} {d.day}, {d.year}" if lang == "en" else f"{d.day} de {m} de {d.year}"
    if style == 3:
        return d.strftime("%d-%m-%Y") if lang != "en" else d.strftime("%m-%d-%Y")
    return d.strftime("%d/%m/%y") if lang != "en" else d.strftime("%m/%d/%y")


def _phone(country: str, rng: random.Random) -> str:
    r = lambda n: "".join(str(rng.randint(0, 9)) for _ in range(n))  # noqa: E731
    return {
        "co": rng.choice([f"+57 3{r(2)} {r(3)} {r(4)}", f"3{r(2)} {r(3)} {r(4)}", f"(601) {r(3)} {r(4)}"]),
        "ar": rng.choice([f"+54 9 11 {r(4)}-{r(4)}", f"(011) {r(4)}-{r(4)}"]),
        "cl": rng.choice([f"+56 9 {r(4)} {r(4)}", f"(2) {r(4)} {r(4)}"]),
        "ec": rng.choice([f"+593 9{r(1)} {r(3)} {r(4)}", f"09{r(1)} {r(3)} {r(4)}"]),
        "br": rng.choice([f"(11) 9{r(4)}-{r(4)}", f"+55 21 9{r(4)}-{r(4)}", f"(31) {r(4)}-{r(4)}"]),
        "us": rng.choice([f"({r(3)}) 555-{r(4)}", f"{r(3)}-555-{r(4)}", f"+1 {r(3)} 555 {r(4)}"]),
    }[country]


def _address(country: str, fk, rng: random.Random) -> str:
    street = fk.last_name()
    n = rng.randint(1, 2999)
    return {
        "co": rng.choice([f"Calle {rng.randint(1, 200)} # {rng.randint(1, 99)}-{rng.randint(1, 99)}", f"Carrera {rng.randint(1, 100)} No. {rng.randint(1, 150)}-{rng.randint(1, 99)}", f"Cra. {rng.randint(1, 100)} #{rng.randint(1, 150)}-{rng.randint(1, 99)}"]),
        "ar": rng.choice([f"Av. {street} {n}", f"Calle {street} {n}"]),
        "cl": rng.choice([f"Pasaje {street} {n}", f"Avenida {street} {n}"]),
        "ec": rng.choice([f"Av. {street} N{rng.randint(10, 80)}-{rng.randint(10, 99)}", f"Calle {street} {n}"]),
        "br": rng.choice([f"Rua {street}, {n}", f"Avenida {fk.first_name()} {street}, {n}", f"Travessa {street}, {n}"]),
        "us": rng.choice([f"{n} {street} Street", f"{n} {fk.first_name()} Avenue", f"{n} {street} Rd"]),
    }[country]


HOSPITAL = {
    "es": ["Hospital {x}", "Clínica {x}", "Hospital Universitario {x}", "Centro Médico {x}", "Sanatorio {x}"],
    "pt": ["Hospital {x}", "Santa Casa de {x}", "Hospital das Clínicas de {x}", "Clínica {x}"],
    "en": ["{x} Medical Center", "{x} General Hospital", "Hospital of {x}", "{x} Memorial Hospital"],
}
LABELS = {
    "es": dict(patient=["Paciente", "Nombre", "Nombre del paciente", "PACIENTE"], doctor=["Médico solicitante", "Médico tratante", "Remitido por"],
               sign=["Informado por", "Firmado por", "Médico radiólogo"], dob="Fecha de nacimiento", date="Fecha del estudio", acc=["Nº de acceso", "Accesión", "Número de acceso"],
               mrn=["Historia clínica", "HC", "NHC"], addr="Dirección", phone=["Teléfono", "Tel.", "Celular"], email="Correo"),
    "pt": dict(patient=["Paciente", "Nome", "Nome do paciente", "PACIENTE"], doctor=["Médico solicitante", "Solicitante"], sign=["Laudado por", "Assinado por", "Médico radiologista"],
               dob="Data de nascimento", date="Data do exame", acc=["Número de acesso", "Nº de acesso"], mrn=["Prontuário", "Registro"], addr="Endereço", phone=["Telefone", "Celular"], email="E-mail"),
    "en": dict(patient=["Patient", "Patient name", "Name", "PATIENT"], doctor=["Referring physician", "Ordering physician"], sign=["Dictated by", "Signed by", "Reading radiologist"],
               dob="DOB", date="Exam date", acc=["Accession No", "Accession #", "Accession number"], mrn=["MRN", "Medical record number"], addr="Address", phone=["Phone", "Tel"], email="Email"),
}
BODY = {
    "es": ["Hallazgos: hígado de tamaño y ecogenicidad normales, sin lesiones focales. Vesícula de paredes finas de 3.2 x 1.1 cm.",
           "Estructuras óseas sin alteraciones. Índice cardiotorácico normal. BI-RADS 2.",
           "Se compara con estudio previo sin cambios significativos. Nódulo de 8 mm en segmento VI."],
    "pt": ["Achados: fígado de dimensões normais, sem lesões focais. Vesícula biliar de paredes finas, medindo 3,2 x 1,1 cm.",
           "Estruturas ósseas sem alterações. Índice cardiotorácico normal. BI-RADS 2.",
           "Comparado com exame anterior sem alterações significativas. Nódulo de 8 mm no segmento VI."],
    "en": ["Findings: the liver is normal in size and echogenicity without focal lesions. Gallbladder wall is thin, 3.2 x 1.1 cm.",
           "No acute osseous abnormality. Normal cardiothoracic ratio. BI-RADS 2.",
           "Compared with the prior study without significant change. 8 mm nodule in segment VI."],
}
PROSE = {
    "es": ["La paciente {name} acude por dolor abdominal.", "Se comenta el caso con {name}, familiar del paciente.", "El señor {name} refiere molestias desde hace una semana."],
    "pt": ["A paciente {name} comparece com dor abdominal.", "Caso discutido com {name}, familiar do paciente.", "O senhor {name} relata desconforto há uma semana."],
    "en": ["The patient {name} presents with abdominal pain.", "Case discussed with {name}, the patient's daughter.", "{name} reports discomfort for one week."],
}
CLOSING = {"es": "Conclusión: estudio sin hallazgos agudos.", "pt": "Conclusão: exame sem achados agudos.", "en": "Impression: no acute findings."}


def generate(n: int = 300, seed: int = 7) -> list[Sample]:
    """``n`` reports spread over co/ar/cl/ec (es), br (pt) and us (en)."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = {}
    for country, (_, loc) in LOCALES.items():
        fk = Faker(loc)
        fk.seed_instance(seed + len(country) * 7 + ord(country[0]))
        fakers[country] = fk
    countries = ["co", "ar", "cl", "ec", "br", "us"]
    out = []
    for i in range(n):
        country = countries[i % len(countries)]
        lang = LOCALES[country][0]
        fk = fakers[country]
        L = LABELS[lang]
        first, last, last2 = fk.first_name(), fk.last_name(), fk.last_name()
        patient = f"{first} {last} {last2}" if lang == "es" and rng.random() < 0.7 else f"{first} {last}"
        doctor = f"{fk.first_name()} {fk.last_name()}"
        relative = f"{fk.first_name()} {fk.last_name()}"
        id_label, id_value = national_id(country, rng)
        mrn = rng.choice([str(rng.randint(100000, 99999999)), f"HC-{rng.randint(10000, 999999)}", f"{rng.randint(1000, 9999)}-{rng.randint(100, 999)}"])
        acc = rng.choice([f"ACC{rng.randint(100000, 9999999)}", f"{rng.randint(2019, 2024)}-{rng.randint(10000, 99999)}", str(rng.randint(1000000, 99999999))])
        dob = dt.date(rng.randint(1935, 2010), rng.randint(1, 12), rng.randint(1, 28))
        study = dt.date(rng.randint(2018, 2024), rng.randint(1, 12), rng.randint(1, 28))
        city = fk.city()
        hosp = rng.choice(HOSPITAL[lang]).format(x=rng.choice([fk.last_name(), city, f"San {fk.first_name()}"]))
        phone = _phone(country, rng)
        address = _address(country, fk, rng)
        email = f"{first.lower()}.{last.lower()}@{rng.choice(['gmail.com', 'hotmail.com', 'correo.com', 'uol.com.br'])}".replace(" ", "")
        # Patient name as written: title case, upper case, or "SURNAME, Name".
        style = rng.randint(0, 2)
        shown = patient if style == 0 else patient.upper() if style == 1 else f"{' '.join(patient.split()[1:]).upper()}, {first}"
        b = _Builder()
        b.phi("ORGANIZATION", hosp).add("\n")
        b.add(f"{rng.choice(L['patient'])}: ").phi("PERSON", shown).add("    ")
        b.add(f"{id_label} ").phi("ID", id_value).add("\n")
        b.add(f"{L['dob']}: ").phi("DATE", _date_text(dob, lang, rng)).add("    ")
        b.add(f"{rng.choice(L['mrn'])}: ").phi("ID", mrn).add("\n")
        b.add(f"{rng.choice(L['acc'])}: ").phi("ID", acc).add("    ")
        b.add(f"{L['date']}: ").phi("DATE", _date_text(study, lang, rng)).add("\n")
        b.add(f"{rng.choice(L['doctor'])}: ").add(rng.choice(["Dr. ", "Dra. ", ""]) if lang != "en" else rng.choice(["Dr. ", ""])).phi("PERSON", doctor).add("\n")
        if rng.random() < 0.6:
            b.add(f"{L['addr']}: ").phi("ADDRESS", address).add(", ").phi("LOCATION", city).add("\n")
        if rng.random() < 0.6:
            b.add(f"{rng.choice(L['phone'])}: ").phi("PHONE", phone).add("   ")
            b.add(f"{L['email']}: ").phi("EMAIL", email).add("\n")
        b.add("\n")
        # A name in prose (no header), half the time the patient's, else a relative's.
        prose = rng.choice(PROSE[lang])
        who = patient if rng.random() < 0.5 else relative
        pre, post = prose.split("{name}")
        b.add(pre).phi("PERSON", who).add(post + " ")
        b.add(rng.choice(BODY[lang]) + "\n")
        if rng.random() < 0.5:
            follow = study + dt.timedelta(days=rng.randint(30, 200))
            b.add({"es": "Control sugerido el ", "pt": "Controle sugerido em ", "en": "Follow-up suggested on "}[lang]).phi("DATE", _date_text(follow, lang, rng)).add(".\n")
        b.add(CLOSING[lang] + "\n")
        b.add(rng.choice(L["sign"]) + ": ").add(rng.choice(["Dr. ", "Dra. ", ""]) if lang != "en" else "").phi("PERSON", f"{fk.first_name()} {fk.last_name()}").add("\n")
        known = [f"{' '.join(patient.split()[1:]).upper()}^{first.upper()}", id_value, mrn, dob.strftime("%Y%m%d"), hosp, doctor.upper().replace(" ", "^", 1)]
        if address in b.text:
            known += [address, phone]
        out.append(Sample(b.text, lang, country, b.planted, known))
    return out




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Recall of the text scrubber on generated es/pt/en reports")
    ap.add_argument("--n", type=int, default=300, help="generated reports")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-ner", action="store_true", help="patterns only")
    args = ap.parse_args(argv)
    from anonymization.text_phi import TextScrubber

    scrubber = TextScrubber(use_ner=not args.no_ner)
    samples = generate(args.n, args.seed)
    result = {
        "ner_model": str(scrubber.ner_model_path) if scrubber.ner_model_path else None,
        "n_reports": len(samples),
        "blind": score(samples, scrubber, False),
        "with_known": score(samples, scrubber, True),
    }
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Person names without an NLP model: header fields, titles, a first-name list.

Reports name people in three ways, and each has a recogniser here:

* header fields: "Paciente: JUAN PÉREZ", "Nome do paciente: Maria da Silva",
  "Referring physician: John Smith", "PEREZ^JOSE" (DICOM PN pasted in);
* titles: "Dr. Gómez", "Dra. Ana Ruiz", "Sr. Oliveira", "Mrs. Brown";
* in prose, a known first name followed by capitalised words ("refiere
  María Fernanda López que...").

The first-name list is a gazetteer of common given names of Latin America,
Brazil and the US. Names the list misses are still caught through the header
or the title they come with, through the values the pipeline knows from the
DICOM headers (``known_phi``), or by the optional NER model.
"""

from __future__ import annotations

import functools
import re
import unicodedata

Span = tuple[str, int, int, float]

_UP = "A-ZÁÉÍÓÚÂÊÔÃÕÀÇÑÜ"
_LO = "a-záéíóúâêôãõàçñüï"
NAME_TOKEN = rf"(?:[{_UP}][{_LO}]+(?:[-'’][{_UP}]?[{_LO}]+)?|[{_UP}]{{2,}}(?:[-'’][{_UP}]+)?|[{_UP}]\.)"
PARTICLE = r"(?:de|del|de\s+la|de\s+los|de\s+las|la|da|das|do|dos|di|van|von|der|y|e|DE|DEL|DA|DAS|DO|DOS|Y|E)"
FULL_NAME = rf"{NAME_TOKEN}(?:(?:[ \t]{PARTICLE})?[ \t]{NAME_TOKEN}){{0,5}}"

PERSON_LABELS = [
    # es
    r"paciente", r"nombre(?:s)?(?:\s+(?:del|de\s+la)\s+paciente)?", r"nombre\s+(?:y\s+apellidos?|completo)", r"apellidos?(?:\s+y\s+nombres?)?",
    r"m[ée]dic[oa](?:\s+(?:tratante|solicitante|remitente|informante|radi[óo]log[oa]|referente|responsable|de\s+cabecera|especialista))?",
    r"radi[óo]log[oa]", r"especialista", r"(?:referid[oa]|remitid[oa]|solicitad[oa]|informad[oa]|firmad[oa]|realizad[oa]|transcrit[oa]|dictad[oa]|validad[oa]|revisad[oa]|atendid[oa]|elaborad[oa])\s+por",
    r"solicitante", r"tecn[óo]log[oa]", r"t[ée]cnic[oa]", r"enfermer[oa]", r"acompañante", r"responsable", r"familiar", r"madre", r"padre",
    r"tutor(?:a)?", r"contacto", r"profesional", r"doctor(?:a)?", r"residente", r"cirujan[oa]", r"firma", r"c[óo]nyuge", r"espos[oa]",
    # pt
    r"nome(?:\s+(?:do|da)\s+paciente)?", r"nome\s+completo", r"nome\s+da\s+m[ãa]e", r"nome\s+do\s+pai", r"m[ée]dic[oa]\s+(?:solicitante|respons[áa]vel|executante|assistente|laudador)",
    r"radiologista", r"(?:laudad[oa]|assinad[oa]|digitad[oa]|liberad[oa])\s+por", r"respons[áa]vel(?:\s+t[ée]cnico)?", r"acompanhante", r"m[ãa]e", r"pai",
    r"enfermeir[oa]", r"t[ée]cnic[oa]\s+(?:respons[áa]vel|em\s+radiologia)", r"biom[ée]dic[oa]",
    # en
    r"patient(?:'s)?(?:\s+name)?", r"name", r"full\s+name", r"(?:referring|ordering|attending|reading|requesting|primary\s+care|treating)\s+(?:physician|doctor|provider|radiologist)",
    r"physician", r"radiologist", r"provider", r"attending", r"(?:signed|dictated|reported|read|performed|transcribed|verified|requested|referred|interpreted|approved|electronically\s+signed)\s+by",
    r"technologist", r"tech", r"nurse", r"mother", r"father", r"guardian", r"(?:emergency\s+)?contact", r"next\s+of\s+kin", r"spouse", r"surgeon", r"resident", r"fellow", r"pcp",
]
# "por"/"by" labels may come without a colon ("Firmado por Juan Pérez").
_LABEL_RE = re.compile(
    r"(?<![\w])(?P<label>" + "|".join(PERSON_LABELS) + r")(?:\s*\((?:a|o|s)\))?(?![^\W\d_])(?P<sep>\s*[:=]|\s+(?=[" + _UP + r"]))[ \t]*",
    re.IGNORECASE,
)
# Words that end a header value: the next field's label.
STOP_WORDS = {
    w.lower()
    for w in (
        "Edad Sexo Género Genero Fecha Nacimiento DNI CC CI ID HC NHC Historia Documento Identificación Cédula Cedula RUT RUN CUIT CUIL "
        "CPF RG CNS Idade Sexo Data Prontuário Registro Age Sex Gender DOB Date Birth MRN Record Study Estudio Exame Exam "
        "Accession Acceso Acesso Accesión Teléfono Telefone Phone Tel Dirección Endereço Address Médico Medico Doctor Physician Servicio "
        "Serviço Service Modalidad Modality Región Procedimiento Procedure Solicitante Informe Laudo Report Hospital Clínica Institución "
        "Orden Pedido Order Entidad EPS Aseguradora Convenio Insurance Cama Habitación Sala Peso Talla Altura Weight Height Firma Atentamente "
        "Hallazgos Achados Findings Conclusión Conclusão Impresión Impression Técnica Technique Indicación Indicação Indication Motivo "
        "Diagnóstico Diagnosis Ref Referido Email Correo Fecha Paciente Patient Nome Nombre Name Años Anos Years Old Masculino Femenino "
        "Feminino Male Female".split()
    )
}
_TITLE_RE = re.compile(
    rf"(?<![\w])(?:Dr|Dra|Dres|Drs|Dr\(a\)|Doctor|Doctora|Doutor|Doutora|Lic|Licda|Licdo|Enf|Prof|Profa|Profª|Sr|Sra|Srta|Sres|Mr|Mrs|Ms|Miss|Mx|Don|Doña|Dona|Dª|"
    rf"DR|DRA|SR|SRA|MR|MRS)(?:\.|(?=\s))[ \t]*(?P<v>{FULL_NAME})"
)

# Common given names of the region (gazetteer). Lower-case, accents removed.
FIRST_NAMES = set(
    """
    adriana agustin agustina alan alba alberto alejandra alejandro alexander alexandre alfonso alfredo alice alicia aline alvaro amanda amelia
    ana andre andrea andres andreia angel angela angelica anibal antonia antonio ariel armando arturo augusto aurora barbara beatriz benjamin
    bernardo bianca brenda bruna bruno camila camilo carla carlos carmen carolina catalina cecilia celia cesar charles christian cinthia clara
    claudia claudio cristian cristina daniel daniela david debora diana diego dolores domingo edgar eduardo elena eliana elias elisa elizabeth
    emilia emilio emily enrique erica erika ernesto esteban estefania ester esther eugenia eva fabiana fabio fatima federico felipe fernanda
    fernando flavia florencia francisca francisco gabriel gabriela gerardo german gilberto giovanna gisele gloria gonzalo graciela guadalupe
    guilherme guillermo gustavo hector helena henrique hernan horacio hugo ignacio ines irene isabel isabela isabella ismael ivan jacqueline
    jaime javier jennifer jessica joana joao joaquin jorge jose josefa josefina joseph juan juana julia juliana julio karen karina katherine
    laura leandro leonardo leticia liliana lina lorena lourdes lucas lucia luciana luciano luis luisa luiz luz manuel manuela marcela marcelo
    marcia marco marcos margarita maria mariana mariano maribel marina mario marisol marta martha martin mateo matheus matias mauricio maximiliano
    mayra melissa mercedes micaela miguel milagros miriam monica nadia natalia nelson nicolas noemi norma octavio olga oliver olivia omar
    orlando oscar osvaldo pablo paola patricia patricio paula paulo pedro pilar priscila rafael rafaela raquel raul rebeca renata renato
    ricardo roberto rocio rodolfo rodrigo rogelio rolando romina rosa rosario ruben ruth sandra santiago sara sebastian sergio silvia simone
    sofia sonia susana tatiana teresa thiago tomas valentina valeria vanessa veronica vicente victor victoria virginia viviana walter
    wilson ximena yesenia yolanda yuri zoe
    adilson aline antonia benedito cicero claudete cleide edson elaine eliane fabiano francisca gean geraldo gilmar iara jaqueline
    joaquim josefa jussara kelly leonor luana marcio marlene neide raimundo regina rosangela sebastiao silvio tania vera wagner washington
    james john robert michael william richard thomas christopher matthew anthony mark donald steven paul andrew joshua kenneth kevin brian
    george timothy ronald edward jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon frank benjamin
    gregory samuel raymond patrick alexander jack dennis jerry tyler aaron henry adam douglas nathan peter zachary kyle walter harold
    mary patricia linda barbara susan jessica sarah nancy lisa betty margaret sandra ashley kimberly donna emily michelle dorothy carol
    amanda melissa deborah stephanie rebecca sharon cynthia kathleen amy shirley anna brenda pamela nicole samantha katherine christine
    debra rachel carolyn janet catherine heather diane ruth julie joyce virginia kelly christina lauren joan evelyn judith megan cheryl
    andrea hannah martha jacqueline frances gloria ann teresa kathryn sara janice jean alice madison doris abigail julia judy grace denise
    amber marilyn beverly danielle theresa sophia marie diana brittany natalie isabella charlotte rose alexis kayla
    """.split()
)
# Common surnames of the region (gazetteer), lower-case without accents.
SURNAMES = set(
    """
    garcia rodriguez martinez hernandez lopez gonzalez perez sanchez ramirez torres flores rivera gomez diaz reyes morales cruz ortiz
    gutierrez chavez ramos ruiz alvarez mendoza castillo jimenez moreno romero herrera medina aguilar vargas castro guzman fernandez
    munoz rojas salazar vasquez vazquez delgado soto contreras sandoval silva figueroa pena navarro campos acosta rios mejia guerrero
    cabrera nunez fuentes carrillo molina valencia espinoza cardenas marin osorio restrepo arango velasquez zapata giraldo ospina
    cardona quintero agudelo betancur jaramillo henao londono munera alzate montoya duque arias pineda suarez cortes parra bermudez
    gaviria burgos benitez villalobos paez riffo jara araya tapia vera sepulveda carrasco espinoza bravo valenzuela alarcon yanez
    cifuentes olivares zuniga leiva orellana pizarro toledo vidal miranda saavedra farias donoso aravena morales quiroga ibarra
    coronel benitez acuna ledesma godoy sosa luna ojeda dominguez aguirre ferreyra ferreira gimenez cabral correa villalba cordoba
    paredes vega andrade zambrano mora cedeno macias vera velez loor moreira intriago alvarado guaman pazmino calderon naranjo
    santos oliveira souza sousa lima pereira costa carvalho almeida ribeiro gomes martins araujo barbosa rocha dias nascimento
    cavalcanti freitas monteiro cardoso teixeira mendes moura nunes vieira cunha pinto campos batista fonseca moraes azevedo
    lopes machado castro melo barros guerra mata rios viana reis ramos duarte peixoto farias brito pires sales dantas
    smith johnson williams brown jones miller davis wilson anderson thomas taylor moore jackson martin lee thompson white harris
    clark lewis robinson walker young allen king wright scott hill green adams baker nelson carter mitchell roberts turner phillips
    campbell parker evans edwards collins stewart morris murphy cook rogers morgan peterson cooper reed bailey bell kelly howard
    ward cox richardson wood watson brooks bennett gray james hughes price sanders myers long ross foster powell jenkins perry
    russell sullivan butler barnes fisher henderson coleman simmons patterson jordan reynolds hamilton graham kim wallace horn
    whitaker gallagher simpson nixon jacobs mccoy
    """.split()
)
# Capitalised words that may follow a first name without being a surname.
NOT_SURNAMES = STOP_WORDS | {"de", "del", "la", "el", "los", "las", "y", "e", "a", "o", "the", "and"}
STOP_WORDS_FOLDED = {"".join(c for c in __import__("unicodedata").normalize("NFKD", w) if not __import__("unicodedata").combining(c)) for w in STOP_WORDS}


_TITLE_AT_START = re.compile(r"(?:Dr|Dra|Dr\(a\)|Dres|Drs|Prof|Profa|Lic|Sr|Sra|Mr|Mrs|Ms)\.?[ \t]+", re.IGNORECASE)
_CONTEXT_BEFORE_RE = re.compile(
    rf"(?<![\w])(?:(?:el|la|o|a|the|al|do|da|del)[ \t]+)?(?:paciente|patient|señor|señora|señorita|senhor|senhora|senhorita|sr\.?|sra\.?|srta\.?|don|doña|dona|"
    rf"(?:comenta(?:do)?|coment[óo]|habl[óo]|discuti(?:do|ó)|discussed|spoke|informad[oa]|contactad[oa]|contacted|llam[óo]|conversado)[ \t]+"
    rf"(?:(?:el|o|the)[ \t]+(?:caso|case)[ \t]+)?(?:con|com|with|a|to|para))[ \t]+(?P<v>{NAME_TOKEN}(?:(?:[ \t]{PARTICLE})?[ \t]{NAME_TOKEN}){{1,4}})"
)
_CONTEXT_AFTER_RE = re.compile(
    rf"(?P<v>{NAME_TOKEN}(?:(?:[ \t]{PARTICLE})?[ \t]{NAME_TOKEN}){{1,4}}),?[ \t]+(?:\(|su[ \t]+|seu[ \t]+|sua[ \t]+|his[ \t]+|her[ \t]+)?"
    rf"(?:familiar|hij[oa]|espos[oa]|madre|padre|herman[oa]|acompañante|acudiente|filh[oa]|m[ãa]e|pai|irm[ãa]o?|acompanhante|"
    rf"the[ \t]+patient's|son|daughter|wife|husband|mother|father|brother|sister|guardian)(?![\w])"
)


# A relative named by a first name alone after the kinship word ("filha Beatriz", "su hija: Valentina",
# "her daughter Amy"). Capitalised words only: "madre HTA, padre DM2" is family history, not names.
_RELATIVE_RE = re.compile(
    rf"(?<![\w])(?i:hij[oa]|espos[oa]|marido|madre|padre|herman[oa]|filh[oa]|m[ãa]e|pai|irm[ãa]o?|"
    rf"son|daughter|wife|husband|mother|father|brother|sister)[ \t]*:?[ \t]+"
    rf"(?P<v>[{_UP}][{_LO}]+(?:[ \t]{NAME_TOKEN}){{0,3}})(?![\w])"
)


@functools.lru_cache(maxsize=1 << 16)
def strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


_TOKEN_RE = re.compile(rf"{NAME_TOKEN}|{PARTICLE}(?=\s)|\^|,", re.UNICODE)


def _header_value_end(text: str, start: int) -> int:
    """End of a person's name that starts at ``start`` in a header field."""
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    segment = text[start:line_end]
    # A wide gap or a separator ends the field.
    cut = re.search(r"\s{3,}|\t|\||;|\s[-–—]\s|\s\(|\d", segment)
    if cut:
        segment = segment[: cut.start()]
    end = start
    pos = 0
    for m in re.finditer(r"[^\s,^]+|[,^]", segment):
        tok = m.group().rstrip(".:")
        low = strip_accents(tok.lower())
        if m.group().endswith(":") or low in STOP_WORDS_FOLDED and m.start() > 0:
            break
        if not re.fullmatch(rf"[{_UP}{_LO}'’.\-]+|[,^]", m.group().rstrip(":")):
            break
        end = start + m.end()
        pos = m.end()
    # drop trailing commas / carets / particles
    while end > start and text[end - 1] in ",^ ":
        end -= 1
    return end


def find_names(text: str, language: str = "es") -> list[Span]:
    out: list[Span] = []
    for m in _LABEL_RE.finditer(text):
        start = m.end()
        if ":" not in m.group("sep") and "=" not in m.group("sep"):
            # No colon: take only a properly capitalised full name (after any title).
            t = _TITLE_AT_START.match(text, start)
            if t:
                start = t.end()
            nm = re.match(FULL_NAME, text[start:])
            if not nm:
                continue
            end = start + nm.end()
            first = strip_accents(nm.group().split()[0].lower())
            if first in STOP_WORDS:
                continue
        else:
            # A title opening the value stays ("Médico: Dr. [NOMBRE]").
            t = _TITLE_AT_START.match(text, start)
            if t:
                start = t.end()
            end = _header_value_end(text, start)
            # Names are capitalised (Title or UPPER case, particles aside):
            # "Técnica: Incidências padrão" is a technique, not a technician.
            words = re.findall(r"[^\W\d_][^\s,^]*", text[start:end])
            if words and not all(w[0].isupper() or re.fullmatch(PARTICLE, w) for w in words):
                continue
        if end - start >= 2 and any(c.isalpha() for c in text[start:end]):
            out.append(("PERSON", start, end, 0.9))
    for m in _TITLE_RE.finditer(text):
        out.append(("PERSON", m.start("v"), m.end("v"), 0.85))
    # Gazetteer: First-name + capitalised word(s).
    for m in re.finditer(rf"(?<![\w]){NAME_TOKEN}", text):
        tok = m.group()
        if strip_accents(tok.lower()) not in FIRST_NAMES:
            continue
        rest = re.match(rf"(?:(?:[ \t]{PARTICLE})?[ \t]{NAME_TOKEN}){{1,4}}", text[m.end() :])
        if rest:
            words = re.findall(NAME_TOKEN, rest.group())
            if words and strip_accents(words[0].lower()) not in NOT_SURNAMES:
                out.append(("PERSON", m.start(), m.end() + rest.end(), 0.75))
                continue
        # A first name alone after a comma-surname ("PÉREZ, Juan") or alone
        # in prose is weaker evidence; keep it when written as a name.
        if tok[0].isupper() and tok[1:].islower() and m.start() > 0 and text[max(0, m.start() - 2) : m.start()].strip() in {",", ""}:
            out.append(("PERSON", m.start(), m.end(), 0.5))
    # Capitalised word + known surname ("Yaneth Gaviria", "Trevor Johnson").
    for m in re.finditer(rf"(?<![\w]){NAME_TOKEN}(?:(?:[ \t]{PARTICLE})?[ \t]{NAME_TOKEN}){{1,4}}", text):
        words = re.findall(NAME_TOKEN, m.group())
        folded = [strip_accents(w.lower()).strip(".") for w in words]
        if any(f in STOP_WORDS_FOLDED for f in folded):
            continue
        if any(f in SURNAMES for f in folded[1:]) or folded[0] in SURNAMES and len(words) >= 2 and folded[1] in SURNAMES:
            out.append(("PERSON", m.start(), m.end(), 0.75))
    # Context: "la paciente X Y", "el señor X", "comenta el caso con X Y", "X Y, familiar del paciente".
    for m in _CONTEXT_BEFORE_RE.finditer(text):
        out.append(("PERSON", m.start("v"), m.end("v"), 0.8))
    for m in _CONTEXT_AFTER_RE.finditer(text):
        out.append(("PERSON", m.start("v"), m.end("v"), 0.8))
    for m in _RELATIVE_RE.finditer(text):  # "filha Beatriz": a relative's first name alone
        if strip_accents(m.group("v").split()[0].lower()) not in STOP_WORDS_FOLDED:
            out.append(("PERSON", m.start("v"), m.end("v"), 0.8))
    # DICOM PN pasted in text: PEREZ^JOSE
    for m in re.finditer(rf"[{_UP}{_LO}'\- ]+\^[{_UP}{_LO}'\-^ ]+", text):
        out.append(("PERSON", m.start(), m.end(), 0.9))
    return out

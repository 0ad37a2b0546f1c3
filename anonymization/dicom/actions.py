"""PS3.15 Annex E actions on the header model: remove, empty, dummy, clean, remap.

The action per attribute comes from ``dicom_rules.RuleBook`` (the whole Table
E.1-1 generated from the standard, narrowed by the profile's options). This
module applies it at any depth:

* UIDs are remapped with the keyed HMAC (``keys.Keyring.uid``) so references
  stay consistent across files, runs and workers; registered class UIDs stay.
* Dates and times move by the patient's offset, a Date and its Time together
  (PS3.15 E.3.6, option 113107); under Safe Harbor (``date_mode: year``)
  every date keeps only its year (45 CFR 164.514(b)(2)(i)(C)).
* Every kept text value (Clean Descriptors, kept codes and meanings, SR text,
  safe-listed private text) is checked with the file's own identifying values
  in any form and the identifier/name recognisers (one rule, shared with the
  verifier: ``phi_scan.PhiSet.find`` + :func:`identifying_spans`). Short text
  loses the spans found; free text (LT/ST/UT) is scrubbed with surrogates by
  the report scrubber, or removed when the profile says so.
* Private elements go unless safe-listed by the profile.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from pydicom.uid import UID_dictionary

from anonymization.dicom.errors import Quarantine
from anonymization.dicom.header import PIXEL_TAGS
from anonymization.dicom_dates import parse_da, shift_da, shift_da_tm, shift_dt, shift_tm
from anonymization.dicom_elements import Node, creator_map, encodings_of, keyword, text_node
from anonymization.dicom_rules import CLEAN, DATE_VRS, DUMMY, EMPTY, KEEP, REMOVE, UID as REMAP, RuleBook
from anonymization.identity import PatientIdentity, age_string
from anonymization.keys import Keyring
from anonymization.phi_scan import DEVICE_FIELDS, Hit, PhiSet, dicom_vocabulary, remove_spans
from anonymization.profiles import Profile

STA_VERSION_NAME = "STA_DEID_1"
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
SHORT_TEXT_VRS = frozenset({"LO", "SH", "UC", "CS", "PN", "AE", "UR"})
NUMBER_VRS = frozenset({"DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV"})
# Codes: values DICOM or a coding scheme defines, never names (searched as coded strings).
CODED_KEYWORDS = frozenset({"CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "ContextIdentifier",
                            "MappingResource", "LongCodeValue", "URNCodeValue", "ContextGroupVersion",
                            "SpecificCharacterSet"})
# Attributes the de-identifier writes itself (their values are never original PHI).
OWN_TAGS = frozenset({0x00100010, 0x00100020, 0x00120062, 0x00120063, 0x00120064, 0x00280303, 0x00101010})
ENCAPSULATED_DOCUMENT = 0x00420011
_NUMBERISH = re.compile(r"\d{5,}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")

_DUMMY_BY_VR = {
    "AE": "STA", "AS": "000Y", "CS": "ANON", "DA": "19000101", "DS": "0", "DT": "19000101000000",
    "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED", "SH": "ANON",
    "ST": "ANONYMIZED", "TM": "000000", "UC": "ANONYMIZED", "UR": "", "UT": "ANONYMIZED",
}
_DUMMY_NUMBERS = {"US": b"\x00\x00", "SS": b"\x00\x00", "UL": b"\x00" * 4, "SL": b"\x00" * 4, "FL": b"\x00" * 4,
                  "FD": b"\x00" * 8, "SV": b"\x00" * 8, "UV": b"\x00" * 8}


def context_of(kw: str, vr: str) -> str:
    """How a value is searched for identifiers (see ``PhiSet.find``): one rule for cleaner and verifier."""
    if kw in DEVICE_FIELDS:
        return "device"
    if vr in NUMBER_VRS:
        return "number"
    if vr in ("CS", "AE") or kw in CODED_KEYWORDS:
        return "coded"
    return "text"


def identifying_spans(phi: PhiSet, text: str, context: str, *, recognisers: bool = True) -> list[Hit]:
    """Spans of a kept value that identify someone: the file's own values in any form and,
    in text, national/record identifiers (checksums, shapes, labels) and people's names found
    by the report scrubber's recognisers (a relative's name no header holds)."""
    hits = phi.find(text, context)
    if context == "text" and recognisers and text and not text.isspace():
        hits.extend(_recognised(text))
    return hits


def _recognised(text: str) -> list[Hit]:
    from anonymization.recognizers.ids import find_ids
    from anonymization.recognizers.names import find_names

    hits: list[Hit] = []
    if any(c.isdigit() for c in text):
        hits.extend(("identifier_pattern", s, e) for _t, s, e, _sc in find_ids(text))
    # People's names by the recognisers in text written in mixed case (code meanings, comments);
    # upper-case short descriptors ("TAC TORAX GARCIA") are codes whose names the file's own
    # values already cover, and the name recogniser reads every capitalised run there as a name.
    if any(c.islower() for c in text):
        vocab = dicom_vocabulary()
        for _t, s, e, _sc in find_names(text):
            s, e = _trim_codes(text, s, e, vocab)  # "TC Quintero AX": the name, not the modality/plane
            if s >= e:
                continue
            words = [w.upper() for w in re.findall(r"[^\W\d_]+", text[s:e])]
            if words and not all(w in vocab for w in words):  # "Head^Routine" is a protocol, not a person
                hits.append(("person_name", s, e))
    return hits


def _trim_codes(text: str, s: int, e: int, vocab: frozenset[str]) -> tuple[int, int]:
    """A person span without the codes at its ends: upper-case tokens of 3 letters or fewer (CT, TC, AX,
    SAG) and DICOM's own words, which the name recogniser reads as name parts in descriptors."""
    tokens = [(m.start() + s, m.end() + s, m.group()) for m in re.finditer(r"[^\W\d_]+", text[s:e])]

    def code(word: str) -> bool:
        return (word.isupper() and len(word) <= 3) or word.upper() in vocab

    while tokens and code(tokens[0][2]):
        tokens.pop(0)
    while tokens and code(tokens[-1][2]):
        tokens.pop()
    return (tokens[0][0], tokens[-1][1]) if tokens else (s, s)


def _plainly_technical(text: str) -> bool:
    """Free text made only of DICOM's own vocabulary and small numbers (no name can hide in it):
    the report scrubber (a model run) is skipped for it."""
    words = re.findall(r"[^\W\d_]+", text)
    if not words or len(words) > 12:
        return not words and not re.search(r"\d{4,}", text)
    vocab = dicom_vocabulary()
    return all(w.upper() in vocab for w in words) and not re.search(r"\d{4,}", text)


class FreeTextScrubber:
    """The report scrubber (Presidio + the text recognisers), built once per process on first use."""

    _lock = threading.Lock()
    _instances: dict[tuple[str, ...], Any] = {}

    def __init__(self, languages: tuple[str, ...]) -> None:
        self.languages = languages

    def scrub(self, text: str, known: list[str], shift_days: int) -> str:
        with self._lock:
            scrubber = self._instances.get(self.languages)
            if scrubber is None:
                from anonymization.text_phi import TextScrubber

                scrubber = self._instances[self.languages] = TextScrubber(list(self.languages))
        return scrubber.scrub(text, self.languages[0], known_phi=known, date_shift_days=shift_days).text


class Actions:
    """The Annex E actions of one profile and key; reusable across files (UID cache inside)."""

    def __init__(self, profile: Profile, keyring: Keyring, languages: tuple[str, ...] = ("es", "pt", "en")) -> None:
        self.profile = profile
        self.keyring = keyring
        self.rules = RuleBook(profile)
        self.scrubber = FreeTextScrubber(tuple(languages))
        self._uids: dict[str, str] = {}
        self._year_only = profile.date_mode == "year"
        self._modified_dates = profile.options.retain_longitudinal_modified_dates or self._year_only
        self.method_nodes = self._method()

    # -- UIDs ----------------------------------------------------------------------------
    def uid(self, value: str, listed: bool) -> str:
        v = value.strip().rstrip("\x00")
        if not v or (not listed and v in UID_dictionary):  # SOP classes, transfer syntaxes, coding schemes
            return v
        out = self._uids.get(v)
        if out is None:
            if len(self._uids) > 100_000:
                self._uids.clear()
            out = self._uids[v] = self.keyring.uid(v)
        return out

    def _remap(self, n: Node, *, listed: bool) -> Node:
        if n.vr != "UI" or n.values is None:
            return Node(n.tag, n.vr, b"", [""] if n.values is not None else None)
        return text_node(n.tag, "UI", [self.uid(v, listed) for v in n.values])

    # -- dates ---------------------------------------------------------------------------
    def _shift_one(self, vr: str, v: str, ident: PatientIdentity) -> str | None:
        if self._year_only:  # Safe Harbor: the year alone (PS3.5: a DA of YYYY0101, a DT of YYYY)
            if vr == "TM":
                return None
            d = parse_da(v[:8])
            if d is None:
                return None
            return f"{d.year:04d}0101" if vr == "DA" else f"{d.year:04d}"
        if vr == "DA":
            return shift_da(v, ident.offset)
        if vr == "DT":
            return shift_dt(v, ident.offset)
        return shift_tm(v, ident.offset)

    def _shift_values(self, n: Node, ident: PatientIdentity) -> list[str] | None:
        out: list[str] = []
        for v in n.values or []:
            v = v.strip()
            if not v:
                out.append(v)
                continue
            shifted = self._shift_one(n.vr, v, ident)
            if shifted is None:
                return None  # a date we cannot shift is a date we cannot publish
            out.append(shifted)
        return out

    def pairs(self, nodes: list[Node], ident: PatientIdentity) -> dict[int, str]:
        """Date+Time attribute pairs shifted together as one datetime (intervals survive to the second)."""
        if self._year_only:
            return {}
        by_kw = {keyword(n.tag): n for n in nodes if not n.private and n.values is not None}
        shifted: dict[int, str] = {}
        for kw, da in by_kw.items():
            if da.vr != "DA" or not kw.endswith("Date") or len(da.values or ()) != 1 or not da.values[0]:
                continue
            tm = by_kw.get(kw[:-4] + "Time")
            if tm is None or tm.vr != "TM" or len(tm.values or ()) != 1 or not tm.values[0]:
                continue
            if self.rules.rule(da.tag, "DA").action not in (CLEAN, DUMMY):
                continue
            pair = shift_da_tm(da.values[0], tm.values[0], ident.offset)
            if pair is not None:
                shifted[da.tag], shifted[tm.tag] = pair
        return shifted

    def _shifted(self, n: Node, ident: PatientIdentity, pairs: dict[int, str]) -> Node | None:
        if n.tag in pairs:
            return text_node(n.tag, n.vr, [pairs[n.tag]])
        values = self._shift_values(n, ident)
        return None if values is None else text_node(n.tag, n.vr, values)

    # -- the table -----------------------------------------------------------------------
    def clean(self, nodes: list[Node], ident: PatientIdentity, encodings: tuple[str, ...],
              pairs: dict[int, str] | None = None) -> list[Node]:
        """PS3.15 Table E.1-1 actions, as narrowed by the profile, applied at any depth."""
        if pairs is None:
            pairs = self.pairs(nodes, ident)
        out: list[Node] = []
        rule_of = self.rules.rule
        creators: dict[int, str] | None = None
        for n in nodes:
            tag, vr = n.tag, n.vr
            if n.private:
                if creators is None:
                    creators = creator_map(nodes)
                if self._keep_private(n, creators):
                    kept = self._checked(n, ident, encodings, "text", descriptor=False)
                    if kept is not None:
                        out.append(kept)
                continue
            if tag & 0xFFFF == 0:
                continue  # group lengths: stale after editing (retired, PS3.5 7.2)
            if tag in PIXEL_TAGS:
                out.append(n)
                continue
            if tag == ENCAPSULATED_DOCUMENT:
                out.append(self._document(n, nodes, ident))
                continue
            if tag == 0x00080005 and n.values is not None:
                encodings = encodings_of(n.values if len(n.values) > 1 else n.values[0])
            rule = rule_of(tag, vr)
            action = rule.action
            if n.items is not None:
                if action == REMOVE:
                    continue
                if action == EMPTY:
                    out.append(Node(tag, "SQ", None, None, []))
                    continue
                # K, C, D, U on a sequence: kept, its items follow the same rules
                out.append(Node(tag, "SQ", None, None, [self.clean(item, ident, encodings, {}) for item in n.items]))
                continue
            if action == KEEP:
                kept = self._checked(n, ident, encodings, context_of(keyword(tag), vr), descriptor=False)
                if kept is not None:
                    out.append(kept)
            elif action == REMOVE:
                continue
            elif action == EMPTY:
                out.append(Node(tag, vr, b"", [""] if n.values is not None else None))
            elif action == REMAP or (action == DUMMY and vr == "UI"):
                out.append(self._remap(n, listed=rule.listed or action == DUMMY))
            elif action == DUMMY:
                if vr in DATE_VRS and self._modified_dates:
                    shifted = self._shifted(n, ident, pairs)
                    if shifted is not None:
                        out.append(shifted)
                else:
                    out.append(_dummy(n))
            elif action == CLEAN:
                if vr in DATE_VRS:
                    shifted = self._shifted(n, ident, pairs)
                    if shifted is not None:
                        out.append(shifted)
                elif n.values is not None and vr in (FREE_TEXT_VRS | SHORT_TEXT_VRS):
                    kept = self._checked(n, ident, encodings, context_of(keyword(tag), vr), descriptor=True)
                    if kept is not None:
                        out.append(kept)
            # any other action is one we do not know, and so do not trust: removed
        return out

    # -- kept text ----------------------------------------------------------------------
    def _checked(self, n: Node, ident: PatientIdentity, encodings: tuple[str, ...], context: str,
                 *, descriptor: bool) -> Node | None:
        """A kept element after the identifier rule: unchanged, cleaned, scrubbed, or None (removed)."""
        if n.values is None or not any(n.values):
            return n
        vr = n.vr
        if vr in ("UI", "DA", "DT", "TM", "AS"):
            return n
        phi = ident.phi
        if vr in FREE_TEXT_VRS:
            text = n.values[0]
            if self.profile.free_text == "remove":
                return None
            if not text.strip():
                return n
            if _plainly_technical(text) and not identifying_spans(phi, text, "text"):
                return n  # "Uncompressed", "Lossy compression 10:1": DICOM's own words, nobody's identity
            scrubbed = self.scrubber.scrub(text, sorted(phi.raw), ident.offset.days)
            if identifying_spans(phi, scrubbed, "text"):
                return None  # something survived the scrubber: the element goes
            return n if scrubbed == text else text_node(n.tag, vr, [scrubbed], encodings)
        changed = False
        values: list[str] = []
        for v in n.values:
            hits = identifying_spans(phi, v, context, recognisers=context == "text" and vr != "PN")
            if descriptor and context == "text":
                hits.extend(("identifier_pattern", m.start(), m.end()) for m in _NUMBERISH.finditer(v))
            if not hits:
                values.append(v)
                continue
            if context != "text" or vr == "PN":
                return None  # a code, a number or a device name holding an identifier: removed whole
            cleaned = remove_spans(v, hits)
            if identifying_spans(phi, cleaned, context):
                return None
            values.append(cleaned)
            changed = True
        if not changed:
            return n
        return text_node(n.tag, vr, values, encodings)

    def _document(self, n: Node, siblings: list[Node], ident: PatientIdentity) -> Node:
        """An encapsulated PDF/CDA (PS3.3 A.45): scrubbed by the document module and kept readable,
        or the file is refused with the module's reason; never published empty or verbatim."""
        try:
            from anonymization.documents import scrub_document
        except ImportError as exc:
            raise Quarantine("document_unscrubbable", "no document scrubber installed") from exc
        mime = next((s.text() for s in siblings if s.tag == 0x00420012 and s.values is not None), "")
        try:
            data, _mime = scrub_document(n.raw or b"", mime, sorted(ident.phi.raw), self.scrubber.languages,
                                         ident.offset.days)
        except Exception as exc:  # noqa: BLE001 - DocumentError carries a stable reason
            raise Quarantine(str(getattr(exc, "reason", "") or "document_unscrubbable"),
                             f"encapsulated document: {type(exc).__name__}") from exc
        if not data.strip():
            raise Quarantine("document_no_text", "encapsulated document empty after scrubbing")
        if len(data) & 1:
            data += b"\x00"
        return Node(n.tag, n.vr, data, None, None, n.wvr)

    def keeps_private(self, n: Node, siblings: list[Node]) -> bool:
        """Whether the profile's safe list keeps this private element (``siblings``: its dataset)."""
        if not (self.profile.options.retain_safe_private and self.profile.safe_private):
            return False
        return self._keep_private(n, creator_map(siblings))

    def _keep_private(self, n: Node, creators: dict[int, str]) -> bool:
        if not (self.profile.options.retain_safe_private and self.profile.safe_private):
            return False
        el = n.tag & 0xFFFF
        if 0x10 <= el <= 0xFF:  # a private creator: kept while one of its elements may be
            creator = (n.values or [""])[0].strip()
            return any(sp.creator == creator for sp in self.profile.safe_private)
        creator = creators.get((n.tag & 0xFFFF0000) | (el >> 8), "")
        return any(
            sp.creator == creator and (el & 0xFF) in sp.elements and n.vr not in ("PN", "SQ", "UN")
            for sp in self.profile.safe_private
        )

    # -- what every output carries ---------------------------------------------------------
    def _method(self) -> list[Node]:
        """Attributes every de-identified file carries (PS3.15 E.1.1 items 5-7), built once."""
        items = [
            [text_node(0x00080100, "SH", [value]), text_node(0x00080102, "SH", ["DCM"]),
             text_node(0x00080104, "LO", [meaning])]
            for value, meaning in self.profile.method_codes()
        ]
        nodes = [
            text_node(0x00120062, "CS", ["YES"]),
            text_node(0x00120063, "LO", [f"STA {STA_VERSION_NAME}; PS3.15 Annex E; profile {self.profile.name}"[:64]]),
            Node(0x00120064, "SQ", None, None, items),
        ]
        if self._modified_dates:
            nodes.append(text_node(0x00280303, "CS", ["MODIFIED"]))
        return nodes

    def finish(self, nodes: list[Node], ident: PatientIdentity) -> list[Node]:
        """Token as name and ID, age (capped), method attributes: the values the de-identifier writes."""
        by_tag = {n.tag: n for n in nodes}
        by_tag[0x00100010] = text_node(0x00100010, "PN", [ident.token])
        by_tag[0x00100020] = text_node(0x00100020, "LO", [ident.token])
        age = age_string(ident.age, self.profile.age_cap)
        if age and self.profile.options.retain_patient_characteristics:
            by_tag[0x00101010] = text_node(0x00101010, "AS", [age])
        else:
            by_tag.pop(0x00101010, None)
        if 0x00100040 in by_tag and not self.profile.options.retain_patient_characteristics:
            by_tag[0x00100040] = text_node(0x00100040, "CS", [""])
        for n in self.method_nodes:
            by_tag[n.tag] = n
        return sorted(by_tag.values(), key=lambda n: n.tag)


def _dummy(n: Node) -> Node:
    """PS3.15 E.1.1 D: a value of the same VR that identifies nobody."""
    if n.vr in _DUMMY_BY_VR:
        return text_node(n.tag, n.vr, [_DUMMY_BY_VR[n.vr]])
    if n.vr in _DUMMY_NUMBERS:
        return Node(n.tag, n.vr, _DUMMY_NUMBERS[n.vr])
    return Node(n.tag, n.vr, b"", None, None, n.wvr if n.vr == "UN" else None)  # binary (O*, UN): empty

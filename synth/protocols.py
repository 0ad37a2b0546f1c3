"""Imaging protocols (what a study contains) and the findings a report can state.

A protocol fixes the modality, body part, series layout and the possible
findings; each finding has report text in Spanish, Portuguese and English
plus the labels a labeller should recover from it (``{"finding": ...}``,
``{"birads": "2"}``). ``body_region`` uses the vocabulary of
``foundation.schema.STUDIES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeriesSpec:
    kind: str  # pixel phantom and image-type family (scout, axial, t1, t2, flair, pd, us, mg, xr)
    desc: str  # SeriesDescription
    count: tuple[int, int]  # images per series (inclusive range)
    view: str = ""  # PA, LAT, CC, MLO ... ('' when not a projection)
    laterality: str = ""  # R or L for paired organs


@dataclass(frozen=True)
class Finding:
    code: str
    labels: dict[str, str]
    text: dict[str, tuple[str, str]]  # language -> (findings paragraph, conclusion)
    weight: float = 1.0


@dataclass(frozen=True)
class Protocol:
    code: str
    modalities: tuple[str, ...]  # one is chosen per study (CR or DX for radiographs)
    body_part: str  # BodyPartExamined
    body_region: str
    title: dict[str, str]  # report title per language
    study_desc: dict[str, str]  # StudyDescription per partner country
    procedure: tuple[str, str]  # (code value, meaning) for ProcedureCodeSequence
    series: tuple[SeriesSpec, ...]
    findings: tuple[Finding, ...]
    indication: dict[str, str]
    sex: str | None = None
    min_age: int = 0
    max_series: int = 0  # 0: all series; else a random subset of at least 2
    weight: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)


def _f(code: str, labels: dict[str, str], es: tuple[str, str], pt: tuple[str, str],
       en: tuple[str, str], weight: float = 1.0) -> Finding:
    return Finding(code, labels, {"es": es, "pt": pt, "en": en}, weight)


CT_CHEST = Protocol(
    code="CT_CHEST", modalities=("CT",), body_part="CHEST", body_region="chest",
    title={"es": "TOMOGRAFÍA COMPUTADA DE TÓRAX", "pt": "TOMOGRAFIA COMPUTADORIZADA DE TÓRAX",
           "en": "CT OF THE CHEST"},
    study_desc={"co": "TAC DE TORAX SIMPLE", "br": "TC DE TORAX"},
    procedure=("871351", "TC Torax simple"),
    series=(SeriesSpec("scout", "Topograma 0.6 T20f", (1, 2)),
            SeriesSpec("axial", "Torax 5.0 B31f", (8, 10))),
    indication={"es": "Tos persistente y disnea.", "pt": "Tosse persistente e dispneia.",
                "en": "Persistent cough and dyspnea."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Parénquima pulmonar sin consolidaciones ni nódulos. Vía aérea central permeable. "
            "No hay derrame pleural ni pericárdico. Mediastino sin adenopatías.",
            "Tomografía de tórax dentro de límites normales."),
           ("Parênquima pulmonar sem consolidações ou nódulos. Vias aéreas centrais pérvias. "
            "Ausência de derrame pleural ou pericárdico. Mediastino sem linfonodomegalias.",
            "Tomografia de tórax dentro dos limites da normalidade."),
           ("Lung parenchyma without consolidation or nodules. Central airways patent. "
            "No pleural or pericardial effusion. No mediastinal lymphadenopathy.",
            "Normal chest CT."), 1.5),
        _f("pulmonary_nodule", {"finding": "pulmonary_nodule"},
           ("Nódulo pulmonar sólido de 7 mm en el lóbulo superior derecho, de bordes bien definidos. "
            "Resto del parénquima sin alteraciones. No hay derrame pleural.",
            "Nódulo pulmonar de 7 mm en el lóbulo superior derecho. Se sugiere control tomográfico "
            "según criterios de Fleischner."),
           ("Nódulo pulmonar sólido de 7 mm no lobo superior direito, de contornos regulares. "
            "Restante do parênquima sem alterações. Ausência de derrame pleural.",
            "Nódulo pulmonar de 7 mm no lobo superior direito. Sugere-se controle tomográfico "
            "conforme critérios de Fleischner."),
           ("A 7 mm solid pulmonary nodule in the right upper lobe with well-defined margins. "
            "The remaining lung parenchyma is unremarkable. No pleural effusion.",
            "7 mm pulmonary nodule in the right upper lobe. Follow-up CT per Fleischner criteria.")),
        _f("pneumonia", {"finding": "pneumonia"},
           ("Consolidación del espacio aéreo en el lóbulo inferior derecho con broncograma aéreo, "
            "compatible con neumonía. Pequeño derrame pleural derecho.",
            "Neumonía del lóbulo inferior derecho."),
           ("Consolidação do espaço aéreo no lobo inferior direito com broncograma aéreo, "
            "compatível com pneumonia. Pequeno derrame pleural à direita.",
            "Pneumonia do lobo inferior direito."),
           ("Airspace consolidation in the right lower lobe with air bronchograms, consistent "
            "with pneumonia. Small right pleural effusion.",
            "Right lower lobe pneumonia.")),
    ),
    weight=1.2,
)

CT_HEAD = Protocol(
    code="CT_HEAD", modalities=("CT",), body_part="HEAD", body_region="head_neck",
    title={"es": "TOMOGRAFÍA COMPUTADA DE CRÁNEO SIMPLE", "pt": "TOMOGRAFIA COMPUTADORIZADA DE CRÂNIO",
           "en": "NON-CONTRAST CT OF THE HEAD"},
    study_desc={"co": "TAC DE CRANEO SIMPLE", "br": "TC CRANIO S/ CONTRASTE"},
    procedure=("871011", "TC Craneo simple"),
    series=(SeriesSpec("scout", "Scout", (1, 1)), SeriesSpec("head", "Cerebro 5mm", (8, 10))),
    indication={"es": "Cefalea súbita.", "pt": "Cefaleia súbita.", "en": "Sudden headache."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Parénquima cerebral de densidad normal. Sistema ventricular de tamaño normal. "
            "No hay colecciones extraaxiales ni desviación de la línea media.",
            "TAC de cráneo simple sin alteraciones."),
           ("Parênquima encefálico com densidade normal. Sistema ventricular de dimensões normais. "
            "Ausência de coleções extra-axiais ou desvio da linha média.",
            "TC de crânio sem alterações."),
           ("Normal brain parenchymal attenuation. Ventricles normal in size. "
            "No extra-axial collection or midline shift.",
            "Unremarkable non-contrast head CT."), 2.0),
        _f("intracranial_hemorrhage", {"finding": "intracranial_hemorrhage"},
           ("Hematoma intraparenquimatoso agudo de 2 cm en la región capsulotalámica izquierda, "
            "sin efecto de masa significativo.",
            "Hemorragia intraparenquimatosa aguda izquierda."),
           ("Hematoma intraparenquimatoso agudo de 2 cm em região capsulotalâmica esquerda, "
            "sem efeito de massa significativo.",
            "Hemorragia intraparenquimatosa aguda à esquerda."),
           ("Acute 2 cm intraparenchymal hematoma in the left capsulothalamic region without "
            "significant mass effect.",
            "Acute left intraparenchymal hemorrhage.")),
    ),
    weight=0.8,
)

MR_BRAIN = Protocol(
    code="MR_BRAIN", modalities=("MR",), body_part="BRAIN", body_region="head_neck",
    title={"es": "RESONANCIA MAGNÉTICA DE CEREBRO", "pt": "RESSONÂNCIA MAGNÉTICA DO ENCÉFALO",
           "en": "MRI OF THE BRAIN"},
    study_desc={"co": "RM CEREBRO SIMPLE", "br": "RM ENCEFALO"},
    procedure=("883101", "RM Cerebro"),
    series=(SeriesSpec("t1", "T1 SAG", (6, 7)), SeriesSpec("t2", "T2 TSE AX", (6, 7)),
            SeriesSpec("flair", "FLAIR AX", (6, 7))),
    max_series=3,
    indication={"es": "Vértigo y cefalea crónica.", "pt": "Vertigem e cefaleia crônica.",
                "en": "Vertigo and chronic headache."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Parénquima encefálico de señal normal en todas las secuencias. No hay lesiones focales "
            "ni restricción a la difusión. Sistema ventricular normal.",
            "Resonancia magnética cerebral normal."),
           ("Parênquima encefálico com sinal normal em todas as sequências. Sem lesões focais ou "
            "restrição à difusão. Sistema ventricular normal.",
            "Ressonância magnética do encéfalo normal."),
           ("Normal brain parenchymal signal on all sequences. No focal lesion or restricted "
            "diffusion. Normal ventricular system.",
            "Normal brain MRI."), 1.5),
        _f("meningioma", {"finding": "meningioma"},
           ("Lesión extraaxial de base dural en la convexidad frontal derecha de 18 mm, isointensa "
            "en T1 e hiperintensa en T2, sugestiva de meningioma.",
            "Hallazgos sugestivos de meningioma frontal derecho."),
           ("Lesão extra-axial com base dural na convexidade frontal direita de 18 mm, isointensa "
            "em T1 e hiperintensa em T2, sugestiva de meningioma.",
            "Achados sugestivos de meningioma frontal direito."),
           ("18 mm dural-based extra-axial lesion over the right frontal convexity, isointense on "
            "T1 and hyperintense on T2, suggestive of meningioma.",
            "Findings suggestive of a right frontal meningioma.")),
    ),
)

MR_KNEE = Protocol(
    code="MR_KNEE", modalities=("MR",), body_part="KNEE", body_region="msk",
    title={"es": "RESONANCIA MAGNÉTICA DE RODILLA", "pt": "RESSONÂNCIA MAGNÉTICA DO JOELHO",
           "en": "MRI OF THE KNEE"},
    study_desc={"co": "RM RODILLA DERECHA", "br": "RM JOELHO DIREITO"},
    procedure=("883511", "RM Rodilla"),
    series=(SeriesSpec("pd", "PD SAG FS", (6, 7)), SeriesSpec("t2", "T2 COR", (6, 7)),
            SeriesSpec("t1", "T1 SAG", (6, 7))),
    max_series=3,
    indication={"es": "Dolor de rodilla tras trauma deportivo.", "pt": "Dor no joelho após trauma esportivo.",
                "en": "Knee pain after a sports injury."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Meniscos de morfología y señal normales. Ligamentos cruzados y colaterales íntegros. "
            "Cartílago articular conservado.", "Resonancia de rodilla sin alteraciones."),
           ("Meniscos com morfologia e sinal normais. Ligamentos cruzados e colaterais íntegros. "
            "Cartilagem articular preservada.", "Ressonância do joelho sem alterações."),
           ("Menisci normal in morphology and signal. Cruciate and collateral ligaments intact. "
            "Articular cartilage preserved.", "Normal knee MRI.")),
        _f("meniscal_tear", {"finding": "meniscal_tear"},
           ("Ruptura oblicua del cuerno posterior del menisco medial que alcanza la superficie "
            "articular inferior. Ligamentos cruzados íntegros. Leve derrame articular.",
            "Ruptura del menisco medial."),
           ("Rotura oblíqua do corno posterior do menisco medial que se estende à superfície "
            "articular inferior. Ligamentos cruzados íntegros. Pequeno derrame articular.",
            "Rotura do menisco medial."),
           ("Oblique tear of the posterior horn of the medial meniscus extending to the inferior "
            "articular surface. Cruciate ligaments intact. Small joint effusion.",
            "Medial meniscal tear.")),
    ),
    weight=0.7,
)

MR_LSPINE = Protocol(
    code="MR_LSPINE", modalities=("MR",), body_part="LSPINE", body_region="msk",
    title={"es": "RESONANCIA MAGNÉTICA DE COLUMNA LUMBAR", "pt": "RESSONÂNCIA MAGNÉTICA DA COLUNA LOMBAR",
           "en": "MRI OF THE LUMBAR SPINE"},
    study_desc={"co": "RM COLUMNA LUMBOSACRA", "br": "RM COLUNA LOMBAR"},
    procedure=("883210", "RM Columna lumbar"),
    series=(SeriesSpec("t2", "T2 SAG", (6, 7)), SeriesSpec("t1", "T1 SAG", (6, 7)),
            SeriesSpec("t2", "T2 AX", (6, 7))),
    max_series=3,
    indication={"es": "Lumbalgia con irradiación a miembro inferior izquierdo.",
                "pt": "Lombalgia com irradiação para membro inferior esquerdo.",
                "en": "Low back pain radiating to the left leg."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Alineación vertebral conservada. Discos intervertebrales de altura y señal normales. "
            "Canal raquídeo amplio.", "Resonancia de columna lumbar normal."),
           ("Alinhamento vertebral preservado. Discos intervertebrais com altura e sinal normais. "
            "Canal vertebral amplo.", "Ressonância da coluna lombar normal."),
           ("Vertebral alignment preserved. Intervertebral discs normal in height and signal. "
            "Spinal canal widely patent.", "Normal lumbar spine MRI.")),
        _f("disc_herniation", {"finding": "disc_herniation"},
           ("Hernia discal posterolateral izquierda L4-L5 que contacta la raíz L5 izquierda. "
            "Cambios degenerativos discales leves.", "Hernia discal L4-L5."),
           ("Hérnia discal póstero-lateral esquerda em L4-L5 tocando a raiz L5 esquerda. "
            "Alterações degenerativas discais leves.", "Hérnia discal L4-L5."),
           ("Left posterolateral L4-L5 disc herniation contacting the left L5 nerve root. "
            "Mild degenerative disc changes.", "L4-L5 disc herniation."), 1.5),
    ),
    weight=0.6,
)

US_ABDOMEN = Protocol(
    code="US_ABDOMEN", modalities=("US",), body_part="ABDOMEN", body_region="abdomen",
    title={"es": "ECOGRAFÍA DE ABDOMEN TOTAL", "pt": "ULTRASSONOGRAFIA DE ABDOME TOTAL",
           "en": "ABDOMINAL ULTRASOUND"},
    study_desc={"co": "ECOGRAFIA ABDOMEN TOTAL", "br": "US ABDOME TOTAL"},
    procedure=("881302", "Ecografia abdomen total"),
    series=(SeriesSpec("us", "Abdomen", (2, 4)),),
    indication={"es": "Dolor en hipocondrio derecho.", "pt": "Dor em hipocôndrio direito.",
                "en": "Right upper quadrant pain."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Hígado, vesícula, páncreas, bazo y riñones de forma, tamaño y ecogenicidad normales. "
            "No hay líquido libre.", "Ecografía abdominal normal."),
           ("Fígado, vesícula, pâncreas, baço e rins com forma, dimensões e ecogenicidade normais. "
            "Ausência de líquido livre.", "Ultrassonografia abdominal normal."),
           ("Liver, gallbladder, pancreas, spleen and kidneys normal in shape, size and "
            "echogenicity. No free fluid.", "Normal abdominal ultrasound.")),
        _f("cholelithiasis", {"finding": "cholelithiasis"},
           ("Vesícula biliar distendida con múltiples imágenes ecogénicas móviles con sombra "
            "acústica posterior, la mayor de 12 mm. Paredes delgadas. Vía biliar no dilatada.",
            "Colelitiasis."),
           ("Vesícula biliar distendida com múltiplas imagens ecogênicas móveis com sombra "
            "acústica posterior, a maior com 12 mm. Paredes finas. Vias biliares não dilatadas.",
            "Colelitíase."),
           ("Distended gallbladder containing multiple mobile echogenic foci with posterior "
            "acoustic shadowing, the largest 12 mm. Thin walls. No biliary dilatation.",
            "Cholelithiasis.")),
        _f("hepatic_steatosis", {"finding": "hepatic_steatosis"},
           ("Hígado de tamaño normal con aumento difuso de la ecogenicidad. Vesícula y vía biliar "
            "sin alteraciones.", "Esteatosis hepática."),
           ("Fígado de dimensões normais com aumento difuso da ecogenicidade. Vesícula e vias "
            "biliares sem alterações.", "Esteatose hepática."),
           ("Normal-sized liver with diffusely increased echogenicity. Gallbladder and bile ducts "
            "unremarkable.", "Hepatic steatosis.")),
    ),
)

US_THYROID = Protocol(
    code="US_THYROID", modalities=("US",), body_part="NECK", body_region="head_neck",
    title={"es": "ECOGRAFÍA DE TIROIDES", "pt": "ULTRASSONOGRAFIA DE TIREOIDE", "en": "THYROID ULTRASOUND"},
    study_desc={"co": "ECOGRAFIA TIROIDES", "br": "US TIREOIDE"},
    procedure=("881131", "Ecografia tiroides"),
    series=(SeriesSpec("us", "Tiroides", (2, 3)),),
    indication={"es": "Control de bocio.", "pt": "Controle de bócio.", "en": "Goitre follow-up."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Glándula tiroides de tamaño y ecogenicidad normales, sin nódulos.", "Ecografía de tiroides normal."),
           ("Glândula tireoide com dimensões e ecogenicidade normais, sem nódulos.",
            "Ultrassonografia de tireoide normal."),
           ("Thyroid gland normal in size and echogenicity without nodules.", "Normal thyroid ultrasound.")),
        _f("thyroid_nodule", {"finding": "thyroid_nodule", "tirads": "3"},
           ("Nódulo sólido isoecoico de 9 mm en el lóbulo tiroideo derecho, de márgenes regulares, "
            "sin calcificaciones (TI-RADS 3).", "Nódulo tiroideo derecho TI-RADS 3."),
           ("Nódulo sólido isoecogênico de 9 mm no lobo tireoidiano direito, margens regulares, "
            "sem calcificações (TI-RADS 3).", "Nódulo tireoidiano direito TI-RADS 3."),
           ("9 mm solid isoechoic nodule in the right thyroid lobe with smooth margins and no "
            "calcifications (TI-RADS 3).", "Right thyroid nodule, TI-RADS 3.")),
    ),
    weight=0.5,
)

MG_SCREENING = Protocol(
    code="MG_SCREENING", modalities=("MG",), body_part="BREAST", body_region="breast",
    title={"es": "MAMOGRAFÍA BILATERAL DE TAMIZAJE", "pt": "MAMOGRAFIA BILATERAL DE RASTREAMENTO",
           "en": "BILATERAL SCREENING MAMMOGRAPHY"},
    study_desc={"co": "MAMOGRAFIA BILATERAL", "br": "MAMOGRAFIA DIGITAL BILATERAL"},
    procedure=("876802", "Mamografia bilateral"),
    series=(SeriesSpec("mg", "R CC", (1, 1), "CC", "R"), SeriesSpec("mg", "L CC", (1, 1), "CC", "L"),
            SeriesSpec("mg", "R MLO", (1, 1), "MLO", "R"), SeriesSpec("mg", "L MLO", (1, 1), "MLO", "L")),
    indication={"es": "Tamizaje anual.", "pt": "Rastreamento anual.", "en": "Annual screening."},
    sex="F", min_age=35,
    findings=(
        _f("birads_1", {"finding": "normal", "birads": "1"},
           ("Mamas de densidad heterogénea (ACR C). No se observan masas, calcificaciones "
            "sospechosas ni distorsión de la arquitectura.", "Mamografía negativa. BI-RADS 1."),
           ("Mamas com densidade heterogênea (ACR C). Não se observam nódulos, calcificações "
            "suspeitas ou distorção arquitetural.", "Mamografia negativa. BI-RADS 1."),
           ("Heterogeneously dense breasts (ACR C). No masses, suspicious calcifications or "
            "architectural distortion.", "Negative mammogram. BI-RADS 1."), 1.5),
        _f("birads_2", {"finding": "benign_calcifications", "birads": "2"},
           ("Calcificaciones vasculares y microcalcificaciones benignas dispersas en ambas mamas. "
            "Ganglio intramamario en el cuadrante superoexterno izquierdo.",
            "Hallazgos benignos. BI-RADS 2."),
           ("Calcificações vasculares e microcalcificações benignas esparsas em ambas as mamas. "
            "Linfonodo intramamário no quadrante superolateral esquerdo.",
            "Achados benignos. BI-RADS 2."),
           ("Scattered benign and vascular calcifications in both breasts. Intramammary lymph "
            "node in the left upper outer quadrant.", "Benign findings. BI-RADS 2."), 1.5),
        _f("birads_3", {"finding": "breast_mass", "birads": "3"},
           ("Nódulo ovalado circunscrito de 8 mm en la mama derecha, radio de las 10, "
            "probablemente benigno.", "Hallazgo probablemente benigno. BI-RADS 3. Control en 6 meses."),
           ("Nódulo ovalado circunscrito de 8 mm na mama direita, às 10 horas, provavelmente benigno.",
            "Achado provavelmente benigno. BI-RADS 3. Controle em 6 meses."),
           ("8 mm circumscribed oval mass in the right breast at 10 o'clock, probably benign.",
            "Probably benign finding. BI-RADS 3. Six-month follow-up.")),
        _f("birads_4", {"finding": "suspicious_calcifications", "birads": "4"},
           ("Grupo de microcalcificaciones pleomórficas agrupadas de 6 mm en el cuadrante "
            "superoexterno de la mama izquierda.", "Hallazgo sospechoso. BI-RADS 4. Se recomienda biopsia."),
           ("Agrupamento de microcalcificações pleomórficas de 6 mm no quadrante superolateral da "
            "mama esquerda.", "Achado suspeito. BI-RADS 4. Recomenda-se biópsia."),
           ("6 mm cluster of pleomorphic microcalcifications in the upper outer quadrant of the "
            "left breast.", "Suspicious finding. BI-RADS 4. Biopsy recommended."), 0.5),
    ),
    weight=1.2,
)

XR_CHEST = Protocol(
    code="XR_CHEST", modalities=("CR", "DX"), body_part="CHEST", body_region="chest",
    title={"es": "RADIOGRAFÍA DE TÓRAX PA Y LATERAL", "pt": "RADIOGRAFIA DE TÓRAX PA E PERFIL",
           "en": "CHEST RADIOGRAPH, PA AND LATERAL"},
    study_desc={"co": "RX DE TORAX PA Y LAT", "br": "RX TORAX PA E PERFIL"},
    procedure=("871121", "Radiografia de torax"),
    series=(SeriesSpec("xr_chest", "PA", (1, 1), "PA"), SeriesSpec("xr_chest", "LAT", (1, 1), "LL")),
    indication={"es": "Fiebre y tos.", "pt": "Febre e tosse.", "en": "Fever and cough."},
    findings=(
        _f("normal", {"finding": "normal"},
           ("Campos pulmonares bien aireados sin consolidaciones. Silueta cardiaca de tamaño normal. "
            "Senos costofrénicos libres.", "Radiografía de tórax normal."),
           ("Campos pulmonares bem aerados, sem consolidações. Área cardíaca normal. "
            "Seios costofrênicos livres.", "Radiografia de tórax normal."),
           ("Lungs well aerated without consolidation. Normal cardiac silhouette. Clear "
            "costophrenic angles.", "Normal chest radiograph."), 2.0),
        _f("pneumonia", {"finding": "pneumonia"},
           ("Opacidad alveolar en la base pulmonar derecha con broncograma aéreo, compatible con "
            "neumonía.", "Neumonía basal derecha."),
           ("Opacidade alveolar na base pulmonar direita com broncograma aéreo, compatível com "
            "pneumonia.", "Pneumonia em base direita."),
           ("Right basal airspace opacity with air bronchograms, consistent with pneumonia.",
            "Right basal pneumonia.")),
        _f("cardiomegaly", {"finding": "cardiomegaly"},
           ("Índice cardiotorácico aumentado (0,58). Campos pulmonares sin consolidaciones.", "Cardiomegalia."),
           ("Índice cardiotorácico aumentado (0,58). Campos pulmonares sem consolidações.", "Cardiomegalia."),
           ("Enlarged cardiothoracic ratio (0.58). No consolidation.", "Cardiomegaly.")),
    ),
    weight=1.8,
)

XR_WRIST = Protocol(
    code="XR_WRIST", modalities=("CR", "DX"), body_part="WRIST", body_region="msk",
    title={"es": "RADIOGRAFÍA DE MUÑECA IZQUIERDA", "pt": "RADIOGRAFIA DO PUNHO ESQUERDO",
           "en": "LEFT WRIST RADIOGRAPHS"},
    study_desc={"co": "RX MUNECA IZQUIERDA", "br": "RX PUNHO ESQUERDO"},
    procedure=("873204", "Radiografia de muneca"),
    series=(SeriesSpec("xr_wrist", "MUNECA AP/LAT", (2, 2), "", "L"),),
    indication={"es": "Caída sobre la mano extendida.", "pt": "Queda sobre a mão estendida.",
                "en": "Fall on an outstretched hand."},
    findings=(
        _f("fracture", {"finding": "fracture"},
           ("Trazo de fractura transverso en la metáfisis distal del radio izquierdo con leve "
            "angulación dorsal.", "Fractura distal del radio (tipo Colles)."),
           ("Traço de fratura transverso na metáfise distal do rádio esquerdo com discreta "
            "angulação dorsal.", "Fratura distal do rádio (tipo Colles)."),
           ("Transverse fracture line through the distal left radial metaphysis with mild dorsal "
            "angulation.", "Distal radius fracture (Colles type)."), 1.5),
        _f("normal", {"finding": "normal"},
           ("Estructuras óseas de la muñeca sin trazos de fractura. Espacios articulares conservados.",
            "Radiografía de muñeca normal."),
           ("Estruturas ósseas do punho sem traços de fratura. Espaços articulares preservados.",
            "Radiografia do punho normal."),
           ("No fracture of the wrist. Joint spaces preserved.", "Normal wrist radiographs.")),
    ),
    weight=0.7,
)

PROTOCOLS: tuple[Protocol, ...] = (
    CT_CHEST, CT_HEAD, MR_BRAIN, MR_KNEE, MR_LSPINE, US_ABDOMEN, US_THYROID, MG_SCREENING,
    XR_CHEST, XR_WRIST,
)

MODALITIES = ("CT", "MR", "US", "MG", "CR", "DX")

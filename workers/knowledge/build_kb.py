"""Writes ``histopath_kb.jsonl``, the histopathology knowledge base, from curated lists.

The file is in scispacy's KB JSONL format (one ``Entity`` per line: concept_id,
canonical_name, aliases, types, definition), so ``scispacy.linking_utils.KnowledgeBase``
loads it as is. Quilt-1M validated its text against UMLS; the full UMLS cannot ship with
this project (licence, size), so this is a small, hand-curated stand-in covering what
histopathology lectures talk about: organs and tissues, cell types, stains and
techniques, lesions and diagnoses, morphological descriptors and microorganisms.

Ids: a real UMLS CUI only where it is well known and certain (``KNOWN_CUIS``); every other
concept gets a stable project-local id ``QC:NNNNNN`` derived from its canonical name, so
re-running the script after adding terms does not renumber old ones. Types are UMLS
semantic type ids (TUIs).

Order matters: the first concepts (``PROMPT_FIRST``) are the most common lecture
vocabulary; the ASR stage builds its Whisper prompt from the KB in file order.

Run: ``python -m workers.knowledge.build_kb`` (rewrites the JSONL next to this file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

from workers.knowledge import kb_terms

KB_PATH = Path(__file__).resolve().parent / "histopath_kb.jsonl"

# UMLS semantic types used here.
T_ANAT = "T017"  # Anatomical Structure
T_ORGAN = "T023"  # Body Part, Organ, or Organ Component
T_TISSUE = "T024"  # Tissue
T_CELL = "T025"  # Cell
T_CELLCOMP = "T026"  # Cell Component
T_SUBST = "T031"  # Body Substance
T_FINDING = "T033"  # Finding
T_PATHFN = "T046"  # Pathologic Function
T_DISEASE = "T047"  # Disease or Syndrome
T_LABPROC = "T059"  # Laboratory Procedure
T_DIAGPROC = "T060"  # Diagnostic Procedure
T_QUAL = "T080"  # Qualitative Concept
T_SPATIAL = "T082"  # Spatial Concept
T_PROTEIN = "T116"  # Amino Acid, Peptide, or Protein
T_REAGENT = "T130"  # Indicator, Reagent, or Diagnostic Aid
T_NEOPLASM = "T191"  # Neoplastic Process
T_ACQ_ABN = "T020"  # Acquired Abnormality
T_BACTERIUM = "T007"  # Bacterium
T_FUNGUS = "T004"  # Fungus
T_VIRUS = "T005"  # Virus
T_EUKARYOTE = "T204"  # Eukaryote (parasites)
T_DEVICE = "T074"  # Medical Device

# Well-known CUIs (UMLS Metathesaurus). Only ids we are certain of; the rest are local.
KNOWN_CUIS: dict[str, str] = {
    "liver": "C0023884",
    "lung": "C0024109",
    "kidney": "C0022646",
    "heart": "C0018787",
    "brain": "C0006104",
    "colon": "C0009368",
    "stomach": "C0038351",
    "breast": "C0006141",
    "prostate": "C0033572",
    "thyroid gland": "C0040132",
    "pancreas": "C0030274",
    "spleen": "C0037993",
    "lymph node": "C0024204",
    "skin": "C0037267",
    "carcinoma": "C0007097",
    "adenocarcinoma": "C0001418",
    "squamous cell carcinoma": "C0007137",
    "melanoma": "C0025202",
    "lymphoma": "C0024299",
    "leukemia": "C0023418",
    "neoplasm": "C0027651",
    "inflammation": "C0021368",
    "necrosis": "C0027540",
    "cell": "C0007634",
}

# "canonical name|alias|alias..." per line, grouped by semantic type.
GROUPS: list[tuple[str, str]] = [
    (
        T_REAGENT,
        """
        hematoxylin and eosin|H&E|H and E|HE stain|haematoxylin and eosin|hematoxylin eosin
        hematoxylin|haematoxylin
        eosin
        periodic acid-Schiff|PAS|PAS stain|periodic acid Schiff stain
        trichrome stain|Masson trichrome|Masson's trichrome|trichrome
        reticulin stain|reticulin
        Congo red|Congo red stain
        Ziehl-Neelsen stain|Ziehl Neelsen|acid-fast stain|AFB stain
        Gram stain
        Grocott methenamine silver|GMS stain|silver stain|Grocott
        mucicarmine|mucicarmine stain
        alcian blue|alcian blue stain
        Prussian blue|Perls stain|iron stain
        Giemsa stain|Giemsa
        Papanicolaou stain|Pap stain
        Verhoeff-Van Gieson|elastic stain|Verhoeff stain|elastic van Gieson
        oil red O|oil red O stain
        toluidine blue
        Fontana-Masson|Fontana Masson stain
        von Kossa stain|von Kossa
        Sudan black
        immunofluorescence|IF
        """,
    ),
    (
        T_LABPROC,
        """
        immunohistochemistry|IHC|immunostain|immunostaining|immunoperoxidase
        frozen section|cryosection|intraoperative frozen section
        special stain|histochemical stain
        fluorescence in situ hybridization|FISH
        in situ hybridization|ISH
        electron microscopy|EM|transmission electron microscopy
        polymerase chain reaction|PCR
        flow cytometry
        fine needle aspiration|FNA|fine needle aspirate
        cytology|cytopathology
        core needle biopsy|core biopsy
        biopsy
        excision|excisional biopsy
        resection|resection specimen
        formalin fixation|formalin fixed|formalin
        paraffin embedding|paraffin block|FFPE
        whole slide image|WSI|digital slide
        polarized light microscopy|polarization|polarized light
        """,
    ),
    (
        T_PROTEIN,
        """
        Ki-67|Ki67|MIB-1
        p53|TP53
        p16
        cytokeratin|keratin|pan-cytokeratin|AE1/AE3
        cytokeratin 7|CK7
        cytokeratin 20|CK20
        CD20
        CD3
        CD30
        CD34
        CD45|leukocyte common antigen|LCA
        CD68
        CD117|c-kit|KIT
        S100|S-100 protein
        SOX10
        desmin
        smooth muscle actin|SMA
        vimentin
        chromogranin|chromogranin A
        synaptophysin
        TTF-1|thyroid transcription factor 1
        estrogen receptor|ER
        progesterone receptor|PR
        HER2|HER2/neu|ERBB2
        CDX2
        GATA3
        PAX8
        WT1
        Melan-A|MART-1
        HMB-45
        GFAP|glial fibrillary acidic protein
        E-cadherin
        mismatch repair proteins|MMR proteins|MLH1|MSH2
        amyloid|amyloid protein
        collagen|collagen fibers
        elastin|elastic fibers
        mucin|mucus
        """,
    ),
    (
        T_ORGAN,
        """
        liver|hepatic
        lung|pulmonary|lungs
        kidney|renal|kidneys
        heart|cardiac
        brain|cerebral
        colon|large intestine|large bowel
        small intestine|small bowel
        stomach|gastric
        esophagus|oesophagus|esophageal
        duodenum
        jejunum
        ileum|terminal ileum
        appendix|vermiform appendix
        rectum
        anus|anal canal
        gallbladder|gall bladder
        pancreas|pancreatic
        spleen|splenic
        lymph node|lymph nodes|nodal
        thymus
        bone marrow|marrow
        breast|mammary gland
        prostate|prostate gland|prostatic
        testis|testes|testicle
        epididymis
        ovary|ovaries|ovarian
        fallopian tube|uterine tube
        uterus|uterine
        endometrium|endometrial
        myometrium
        cervix|uterine cervix|cervical
        placenta|placental
        urinary bladder|bladder
        ureter
        urethra
        adrenal gland|adrenal|adrenal cortex|adrenal medulla
        thyroid gland|thyroid
        parathyroid gland|parathyroid
        pituitary gland|pituitary|hypophysis
        salivary gland|parotid gland|submandibular gland
        tonsil|tonsils
        skin|cutaneous
        epidermis
        dermis
        subcutis|subcutaneous tissue|hypodermis
        bone|osseous
        cartilage|hyaline cartilage
        skeletal muscle
        cerebellum
        cerebral cortex|cortex
        spinal cord
        meninges|dura mater|arachnoid
        peripheral nerve|nerve
        eye|retina
        larynx
        trachea
        bronchus|bronchi
        bronchiole|bronchioles
        alveolus|alveoli|alveolar
        pleura|pleural
        peritoneum|peritoneal
        glomerulus|glomeruli|glomerular
        renal tubule|tubules|proximal tubule|distal tubule
        renal cortex
        renal medulla
        bile duct|bile ducts|biliary
        portal tract|portal triad|portal area
        central vein|centrilobular vein
        hepatic lobule|liver lobule
        hepatic sinusoid|sinusoids
        islet of Langerhans|islets|pancreatic islets
        acinus|acini|acinar
        """,
    ),
    (
        T_TISSUE,
        """
        epithelium|epithelial|epithelial tissue
        simple squamous epithelium
        stratified squamous epithelium|squamous epithelium
        simple columnar epithelium|columnar epithelium
        simple cuboidal epithelium|cuboidal epithelium
        pseudostratified columnar epithelium|respiratory epithelium|pseudostratified epithelium
        transitional epithelium|urothelium|urothelial
        keratinized epithelium|keratinizing epithelium
        connective tissue
        loose connective tissue|areolar tissue
        dense connective tissue|dense irregular connective tissue
        adipose tissue|fat|adipose
        smooth muscle
        cardiac muscle|myocardium
        lymphoid tissue|lymphoid follicle|lymphoid follicles
        granulation tissue
        stroma|stromal
        parenchyma
        mucosa|mucous membrane|mucosal
        submucosa|submucosal
        muscularis propria|muscularis externa
        muscularis mucosae
        serosa|serosal
        adventitia
        lamina propria
        basement membrane|basal lamina
        crypt|crypts|crypts of Lieberkuhn|intestinal crypts
        villus|villi|intestinal villi
        gland|glands|glandular
        duct|ducts|ductal
        lobule|lobules|lobular
        germinal center|germinal centre|germinal centers
        mantle zone
        red pulp
        white pulp
        medulla|medullary
        capsule|fibrous capsule
        blood vessel|blood vessels|vessel|vessels|vascular
        artery|arteries|arterial
        arteriole|arterioles
        vein|veins|venous
        capillary|capillaries
        lymphatic vessel|lymphatics
        Haversian canal|osteon
        gray matter|grey matter
        white matter
        neuropil
        """,
    ),
    (
        T_CELL,
        """
        cell|cells|cellular
        hepatocyte|hepatocytes|liver cell
        Kupffer cell|Kupffer cells
        cholangiocyte|cholangiocytes|biliary epithelial cell
        goblet cell|goblet cells
        Paneth cell|Paneth cells
        enterocyte|enterocytes
        parietal cell|parietal cells
        chief cell|chief cells
        neuroendocrine cell|neuroendocrine cells|enteroendocrine cells
        lymphocyte|lymphocytes|lymphocytic
        plasma cell|plasma cells
        neutrophil|neutrophils|neutrophilic|polymorphonuclear leukocyte
        eosinophil|eosinophils
        basophil|basophils
        mast cell|mast cells
        macrophage|macrophages|histiocyte|histiocytes
        monocyte|monocytes
        foam cell|foam cells|foamy macrophages
        multinucleated giant cell|giant cell|giant cells|Langhans giant cell
        epithelioid histiocyte|epithelioid histiocytes|epithelioid cells
        Reed-Sternberg cell|Reed Sternberg cells|Hodgkin cell
        erythrocyte|erythrocytes|red blood cell|red blood cells|RBC
        leukocyte|leukocytes|white blood cell|white blood cells
        platelet|platelets|thrombocyte
        megakaryocyte|megakaryocytes
        fibroblast|fibroblasts
        myofibroblast|myofibroblasts
        fibrocyte|fibrocytes
        adipocyte|adipocytes|fat cell|fat cells
        chondrocyte|chondrocytes
        osteoblast|osteoblasts
        osteoclast|osteoclasts
        osteocyte|osteocytes
        smooth muscle cell|smooth muscle cells|leiomyocyte
        cardiomyocyte|cardiomyocytes|cardiac myocyte
        skeletal muscle fiber|muscle fibers|myocyte|myocytes
        endothelial cell|endothelial cells|endothelium
        pericyte|pericytes
        neuron|neurons|nerve cell
        astrocyte|astrocytes
        oligodendrocyte|oligodendrocytes
        microglia|microglial cell
        Schwann cell|Schwann cells
        Purkinje cell|Purkinje cells
        keratinocyte|keratinocytes
        melanocyte|melanocytes
        Langerhans cell|Langerhans cells
        squamous cell|squamous cells
        basal cell|basal cells
        myoepithelial cell|myoepithelial cells
        pneumocyte|pneumocytes|type I pneumocyte|type II pneumocyte
        alveolar macrophage|alveolar macrophages|dust cells
        podocyte|podocytes
        mesangial cell|mesangial cells
        Leydig cell|Leydig cells
        Sertoli cell|Sertoli cells
        spermatocyte|spermatocytes|germ cells
        oocyte|oocytes
        granulosa cell|granulosa cells
        theca cell|theca cells
        trophoblast|trophoblasts|syncytiotrophoblast|cytotrophoblast
        follicular cell|thyroid follicular cells
        C cell|parafollicular cell
        acinar cell|acinar cells
        ductal cell|ductal cells
        mesothelial cell|mesothelial cells|mesothelium
        signet ring cell|signet ring cells
        koilocyte|koilocytes
        tumor cell|tumor cells|neoplastic cells|malignant cells
        """,
    ),
    (
        T_CELLCOMP,
        """
        nucleus|nuclei|nuclear
        nucleolus|nucleoli|prominent nucleoli
        cytoplasm|cytoplasmic
        chromatin
        cell membrane|plasma membrane
        mitochondria|mitochondrion
        brush border|microvilli
        cilia|ciliated
        intercalated disc|intercalated discs
        Mallory-Denk body|Mallory body|Mallory bodies|Mallory hyaline
        Russell body|Russell bodies
        Councilman body|apoptotic body|apoptotic bodies
        Lewy body|Lewy bodies
        Negri body
        psammoma body|psammoma bodies
        Call-Exner body|Call-Exner bodies
        Schaumann body|asteroid body
        inclusion body|viral inclusions|inclusion bodies
        Auer rod|Auer rods
        Charcot-Leyden crystals
        Howell-Jolly body
        keratin pearl|keratin pearls|squamous pearls
        """,
    ),
    (
        T_NEOPLASM,
        """
        neoplasm|tumor|tumour|neoplasia|neoplastic
        carcinoma|carcinomas
        adenocarcinoma|adenocarcinomas
        squamous cell carcinoma|SCC
        basal cell carcinoma|BCC
        urothelial carcinoma|transitional cell carcinoma
        hepatocellular carcinoma|HCC|hepatoma|liver cell carcinoma
        cholangiocarcinoma|bile duct carcinoma
        renal cell carcinoma|clear cell renal cell carcinoma|RCC
        papillary thyroid carcinoma|papillary carcinoma
        follicular thyroid carcinoma|follicular carcinoma
        medullary thyroid carcinoma|medullary carcinoma
        invasive ductal carcinoma|ductal carcinoma|invasive carcinoma of no special type
        invasive lobular carcinoma|lobular carcinoma
        ductal carcinoma in situ|DCIS
        lobular carcinoma in situ|LCIS
        carcinoma in situ
        small cell carcinoma|small cell lung carcinoma|oat cell carcinoma
        large cell carcinoma
        neuroendocrine tumor|carcinoid|carcinoid tumor|neuroendocrine neoplasm
        adenoma|adenomas
        tubular adenoma
        villous adenoma
        sessile serrated lesion|sessile serrated adenoma|serrated polyp
        pleomorphic adenoma
        Warthin tumor
        fibroadenoma
        phyllodes tumor
        papilloma
        leiomyoma|fibroid
        leiomyosarcoma
        lipoma
        liposarcoma
        sarcoma|sarcomas
        rhabdomyosarcoma
        osteosarcoma
        chondrosarcoma
        Ewing sarcoma
        gastrointestinal stromal tumor|GIST
        schwannoma|neurilemmoma
        neurofibroma
        meningioma
        glioma
        glioblastoma|glioblastoma multiforme|GBM
        astrocytoma
        oligodendroglioma
        medulloblastoma
        neuroblastoma
        hemangioma
        angiosarcoma
        Kaposi sarcoma
        melanoma|malignant melanoma
        nevus|nevi|melanocytic nevus|mole
        lymphoma|lymphomas
        Hodgkin lymphoma|Hodgkin disease
        diffuse large B-cell lymphoma|DLBCL
        follicular lymphoma
        Burkitt lymphoma
        leukemia|leukaemia
        plasmacytoma|multiple myeloma|myeloma
        seminoma
        yolk sac tumor
        teratoma|mature teratoma|dermoid cyst
        choriocarcinoma
        Wilms tumor|nephroblastoma
        mesothelioma
        serous carcinoma|high-grade serous carcinoma
        endometrioid carcinoma
        mucinous carcinoma|colloid carcinoma
        signet ring cell carcinoma
        metastasis|metastases|metastatic
        """,
    ),
    (
        T_DISEASE,
        """
        hepatitis|chronic hepatitis
        cirrhosis|liver cirrhosis
        steatohepatitis|NASH|nonalcoholic steatohepatitis
        pneumonia|lobar pneumonia|bronchopneumonia
        tuberculosis|TB|mycobacterial infection
        sarcoidosis
        emphysema
        asthma
        bronchiectasis
        pulmonary fibrosis|interstitial fibrosis
        glomerulonephritis
        pyelonephritis
        acute tubular necrosis|ATN
        diabetic nephropathy|nodular glomerulosclerosis|Kimmelstiel-Wilson nodules
        amyloidosis
        myocardial infarction|heart attack
        myocarditis
        endocarditis
        atherosclerosis|atheroma|atherosclerotic plaque
        vasculitis
        gastritis|chronic gastritis
        Helicobacter gastritis
        peptic ulcer|gastric ulcer
        Barrett esophagus|Barrett's esophagus|Barrett mucosa
        esophagitis|reflux esophagitis
        eosinophilic esophagitis
        celiac disease|coeliac disease|gluten enteropathy
        Crohn disease|Crohn's disease
        ulcerative colitis
        colitis
        appendicitis|acute appendicitis
        pancreatitis
        cholecystitis
        thyroiditis|Hashimoto thyroiditis|chronic lymphocytic thyroiditis
        Graves disease
        goiter|multinodular goiter
        endometriosis
        adenomyosis
        cervical intraepithelial neoplasia|CIN|squamous intraepithelial lesion
        psoriasis
        lichen planus
        dermatitis|eczema|spongiotic dermatitis
        osteomyelitis
        Alzheimer disease|Alzheimer's disease
        infarction|infarct
        abscess|abscesses
        cyst|cysts|cystic
        polyp|polyps|hyperplastic polyp
        hemorrhage|haemorrhage|bleeding
        thrombosis|thrombus|thrombi
        embolism|embolus
        edema|oedema
        gout|tophus
        """,
    ),
    (
        T_PATHFN,
        """
        inflammation|inflammatory|inflamed
        acute inflammation|acute inflammatory infiltrate
        chronic inflammation|chronic inflammatory infiltrate
        granulomatous inflammation|granuloma|granulomas
        caseating granuloma|caseous necrosis|caseation
        necrosis|necrotic
        coagulative necrosis
        liquefactive necrosis
        fat necrosis
        fibrinoid necrosis
        apoptosis|apoptotic
        fibrosis|fibrotic|scarring
        steatosis|fatty change|fatty liver|fat droplets
        hyperplasia|hyperplastic
        hypertrophy
        atrophy|atrophic
        metaplasia|metaplastic
        intestinal metaplasia
        squamous metaplasia
        dysplasia|dysplastic
        high-grade dysplasia
        low-grade dysplasia
        anaplasia|anaplastic
        invasion|invasive|stromal invasion
        lymphovascular invasion|LVI|vascular invasion
        perineural invasion
        ulceration|ulcer|ulcerated
        erosion
        hyalinization|hyaline change
        calcification|dystrophic calcification|calcified
        cholestasis|bile plugs
        congestion|vascular congestion
        infiltrate|infiltration|inflammatory infiltrate
        regeneration
        repair|wound healing
        desmoplasia|desmoplastic stroma|desmoplastic reaction
        angiogenesis|neovascularization
        cryptitis|crypt abscess|crypt abscesses
        interface hepatitis|piecemeal necrosis
        """,
    ),
    (
        T_FINDING,
        """
        pleomorphism|nuclear pleomorphism|pleomorphic
        hyperchromasia|hyperchromatic|hyperchromatic nuclei
        mitosis|mitoses|mitotic figure|mitotic figures|mitotic activity
        atypical mitosis|atypical mitoses
        nuclear atypia|atypia|cytologic atypia
        high nuclear to cytoplasmic ratio|N:C ratio|nuclear-cytoplasmic ratio
        eosinophilic|eosinophilic cytoplasm
        basophilic|basophilic cytoplasm
        amphophilic
        clear cytoplasm|clear cell|clear cells
        vacuolated|vacuolization|vacuoles
        foamy|foamy cytoplasm
        granular|granular cytoplasm
        vesicular chromatin|vesicular nuclei
        salt and pepper chromatin|speckled chromatin
        coarse chromatin
        nuclear grooves|coffee bean nuclei
        nuclear pseudoinclusions|intranuclear inclusions
        ground glass nuclei|Orphan Annie eye nuclei
        nuclear molding
        nuclear palisading|palisading
        rosettes|Homer Wright rosettes|Flexner-Wintersteiner rosettes
        papillae|papillary|papillary architecture
        cribriform|cribriform pattern
        solid pattern|solid sheets|sheets
        trabecular|trabeculae
        acinar pattern|glandular pattern
        fascicles|fascicular|spindle cell fascicles
        storiform|storiform pattern
        herringbone pattern
        spindle cell|spindle cells|spindled
        epithelioid|epithelioid morphology
        round blue cells|small round blue cell
        syncytial|syncytium
        multinucleated|multinucleation
        binucleated
        keratinization|keratinizing
        dyskeratosis|dyskeratotic
        parakeratosis
        hyperkeratosis
        acanthosis
        spongiosis
        mucinous|mucin-producing
        serous
        hemosiderin|hemosiderin-laden macrophages|siderophages
        lipofuscin
        bile pigment|bilirubin
        melanin|melanin pigment
        anthracotic pigment|anthracosis|carbon pigment
        pigment|pigmented
        microcalcifications
        well differentiated|well-differentiated
        moderately differentiated
        poorly differentiated|undifferentiated
        tumor grade|grade|grading
        margin|surgical margin|resection margin|margins
        """,
    ),
    (
        T_SPATIAL,
        """
        lumen|lumina|luminal
        surface epithelium
        basal layer|stratum basale
        stratum spinosum|spinous layer
        granular layer|stratum granulosum
        stratum corneum|cornified layer|keratin layer
        periportal|zone 1
        centrilobular|pericentral|zone 3
        perivascular
        subepithelial
        interstitium|interstitial
        """,
    ),
    (
        T_SUBST,
        """
        bile
        fibrin
        keratin debris|keratinous debris
        colloid|thyroid colloid
        osteoid
        hyaline material
        blood|whole blood
        pus|purulent exudate|exudate
        """,
    ),
    (
        T_BACTERIUM,
        """
        Helicobacter pylori|H. pylori|Helicobacter
        Mycobacterium tuberculosis|acid-fast bacilli|AFB
        bacteria|bacterial colonies|cocci|bacilli
        Actinomyces|sulfur granules
        """,
    ),
    (
        T_FUNGUS,
        """
        Candida|candidiasis|yeast
        Aspergillus|aspergillosis|fungal hyphae
        Cryptococcus|cryptococcosis
        Pneumocystis|Pneumocystis jirovecii
        Histoplasma|histoplasmosis
        """,
    ),
    (
        T_VIRUS,
        """
        cytomegalovirus|CMV|CMV inclusions
        herpes simplex virus|HSV|herpes
        human papillomavirus|HPV
        Epstein-Barr virus|EBV
        """,
    ),
    (
        T_EUKARYOTE,
        """
        Schistosoma|schistosomiasis
        Giardia|giardiasis
        Entamoeba histolytica|amoebiasis
        Enterobius vermicularis|pinworm
        """,
    ),
    (
        T_QUAL,
        """
        benign
        malignant|malignancy
        in situ
        low power|low magnification|scanning power
        high power|high magnification|high power field|HPF
        magnification
        """,
    ),
    (
        T_DEVICE,
        """
        microscope|light microscope|microscopy
        glass slide|slide|slides
        """,
    ),
]

# Concepts with an extra semantic type beside their group's.
EXTRA_TYPES: dict[str, list[str]] = {
    "hematoxylin and eosin": [T_LABPROC],
    "immunohistochemistry": [T_DIAGPROC],
    "biopsy": [T_DIAGPROC],
    "fine needle aspiration": [T_DIAGPROC],
    "frozen section": [T_DIAGPROC],
    "granulomatous inflammation": [T_DISEASE],
    "metastasis": [T_PATHFN],
    "nevus": [T_ACQ_ABN],
    "polyp": [T_ACQ_ABN],
    "cyst": [T_ACQ_ABN],
    "amyloid": [T_SUBST],
    "mucin": [T_SUBST],
    "collagen": [T_TISSUE],
    "blood vessel": [T_ANAT],
}

DEFINITIONS: dict[str, str] = {
    "hematoxylin and eosin": "The routine histological stain: hematoxylin colours nuclei blue-purple, eosin colours cytoplasm and extracellular matrix pink.",
    "hematoxylin": "A basic dye that stains nuclear chromatin blue-purple.",
    "eosin": "An acidic dye that stains cytoplasm, collagen and muscle pink.",
    "periodic acid-Schiff": "A histochemical stain for glycogen, mucin and basement membranes (magenta).",
    "immunohistochemistry": "Detection of antigens in tissue sections with labelled antibodies.",
    "lamina propria": "Loose connective tissue beneath the epithelium of a mucosa.",
    "hepatocyte": "The main parenchymal cell of the liver.",
    "hepatocellular carcinoma": "A malignant epithelial tumour of hepatocytes.",
    "bile duct": "A duct lined by cholangiocytes that carries bile from the liver.",
    "goblet cell": "A mucin-secreting columnar epithelial cell of the intestine and airways.",
    "crypt": "A tubular invagination of the intestinal mucosa (crypt of Lieberkuhn).",
    "steatosis": "Accumulation of lipid vacuoles in the cytoplasm of cells, mainly hepatocytes.",
    "granulomatous inflammation": "Chronic inflammation with aggregates of epithelioid histiocytes (granulomas).",
    "necrosis": "Death of cells or tissue in a living organism.",
    "carcinoma": "A malignant neoplasm of epithelial origin.",
    "adenocarcinoma": "A carcinoma with glandular differentiation.",
    "squamous cell carcinoma": "A carcinoma with squamous differentiation (keratinization, intercellular bridges).",
    "dysplasia": "Disordered growth with cytologic atypia, short of invasion.",
    "metaplasia": "Replacement of one differentiated cell type by another.",
    "mitosis": "Cell division, seen in sections as mitotic figures.",
    "stroma": "The supporting connective tissue of an organ or tumour.",
    "epithelium": "Tissue of cohesive cells covering surfaces and lining cavities and glands.",
    "fibrosis": "Excess deposition of collagen, scarring.",
    "lymphocyte": "A small round mononuclear white blood cell with scant cytoplasm.",
    "melanoma": "A malignant neoplasm of melanocytes.",
    "lymphoma": "A malignant neoplasm of lymphocytes.",
}

# Most common lecture vocabulary first: the ASR prompt is built from the head of the file.
PROMPT_FIRST: list[str] = [
    "hematoxylin and eosin",
    "immunohistochemistry",
    "epithelium",
    "lamina propria",
    "stroma",
    "hepatocyte",
    "bile duct",
    "portal tract",
    "goblet cell",
    "crypt",
    "steatosis",
    "fibrosis",
    "necrosis",
    "granulomatous inflammation",
    "lymphocyte",
    "plasma cell",
    "neutrophil",
    "eosinophil",
    "macrophage",
    "nucleus",
    "nucleolus",
    "cytoplasm",
    "mitosis",
    "pleomorphism",
    "hyperchromasia",
    "dysplasia",
    "metaplasia",
    "carcinoma",
    "adenocarcinoma",
    "squamous cell carcinoma",
    "hepatocellular carcinoma",
    "lymphoma",
    "melanoma",
    "glomerulus",
    "alveolus",
    "mucosa",
    "submucosa",
    "keratinocyte",
    "cirrhosis",
    "periodic acid-Schiff",
]


def local_id(name: str) -> str:
    """A stable project-local id from the canonical name (6 digits of its sha1)."""
    digest = int(hashlib.sha1(name.lower().encode()).hexdigest(), 16)
    return f"QC:{digest % 1_000_000:06d}"


def build_entities() -> list[dict]:
    entities: dict[str, dict] = {}
    used_ids: set[str] = set()
    for tui, block in GROUPS:
        for line in block.strip().splitlines():
            names = [n.strip() for n in line.split("|") if n.strip()]
            if not names:
                continue
            canonical, aliases = names[0], names[1:]
            key = canonical.lower()
            if key in entities:
                raise ValueError(f"duplicate concept {canonical!r}")
            concept_id = KNOWN_CUIS.get(key) or local_id(canonical)
            if concept_id in used_ids:
                raise ValueError(f"id collision for {canonical!r}: {concept_id}")
            used_ids.add(concept_id)
            entities[key] = {
                "concept_id": concept_id,
                "canonical_name": canonical,
                "aliases": aliases,
                "types": [tui, *EXTRA_TYPES.get(key, [])],
                "definition": DEFINITIONS.get(canonical),
            }
    # The wider vocabulary of kb_terms: a line whose name is already a concept's name or
    # alias adds its aliases to that concept (curated lists overlap); others are new.
    by_surface = {
        surface.lower(): key
        for key, e in entities.items()
        for surface in [e["canonical_name"], *e["aliases"]]
    }
    extra = [
        (tui, line) for tui, block in kb_terms.EXTRA_GROUPS for line in block.strip().splitlines()
    ] + kb_terms.organ_tumor_lines()
    for tui, line in extra:
        names = [n.strip() for n in line.split("|") if n.strip()]
        if not names:
            continue
        canonical, aliases = names[0], names[1:]
        key = by_surface.get(canonical.lower())
        if key is not None:
            known = {
                a.lower() for a in [entities[key]["canonical_name"], *entities[key]["aliases"]]
            }
            for alias in aliases:
                if alias.lower() not in known:
                    entities[key]["aliases"].append(alias)
                    known.add(alias.lower())
                    by_surface.setdefault(alias.lower(), key)
            continue
        key = canonical.lower()
        concept_id = KNOWN_CUIS.get(key) or local_id(canonical)
        salt = 0
        while concept_id in used_ids:  # 6 digits collide now and then: salt the new name
            salt += 1
            concept_id = local_id(f"{canonical}#{salt}")
        used_ids.add(concept_id)
        entities[key] = {
            "concept_id": concept_id,
            "canonical_name": canonical,
            "aliases": aliases,
            "types": [kb_terms.EXTRA_TYPE_OF.get(canonical, tui), *EXTRA_TYPES.get(key, [])],
            "definition": DEFINITIONS.get(canonical),
        }
        for surface in names:
            by_surface.setdefault(surface.lower(), key)
    _add_hyphenated_variants(entities)
    missing = [n for n in [*PROMPT_FIRST, *DEFINITIONS, *KNOWN_CUIS] if n.lower() not in entities]
    if missing:
        raise ValueError(f"names not in the KB: {missing}")
    first = [n.lower() for n in PROMPT_FIRST]
    head = [entities[n] for n in first]
    rest = [e for k, e in entities.items() if k not in set(first)]
    return head + rest


# Combining prefixes that speech and ASR set apart from the stem ("pseudo-palisading",
# "sub-nuclear", "intra-epithelial": Whisper writes "high -grade", "low -power"); the
# hyphenated spelling is an alias of the closed one, so that it is found as it is.
COMBINING_PREFIXES = (
    "pseudo",
    "intra",
    "inter",
    "peri",
    "supra",
    "sub",
    "hyper",
    "hypo",
    "micro",
    "macro",
    "multi",
    "poly",
    "extra",
    "neo",
    "non",
)


def hyphenated_variants(name: str, words: set[str]) -> list[str]:
    """``name`` with one prefixed word split at its prefix, where the rest of that word is
    itself a KB word: "pseudopalisading necrosis" -> "pseudo-palisading necrosis"."""
    parts = name.split(" ")
    out = []
    for n, part in enumerate(parts):
        low = part.lower()
        for prefix in COMBINING_PREFIXES:
            rest = low[len(prefix) :]
            if low.startswith(prefix) and len(rest) >= 4 and rest in words:
                split = part[: len(prefix)] + "-" + part[len(prefix) :]
                out.append(" ".join([*parts[:n], split, *parts[n + 1 :]]))
                break
    return out


def _add_hyphenated_variants(entities: dict[str, dict]) -> None:
    surfaces = {
        surface.lower()
        for e in entities.values()
        for surface in [e["canonical_name"], *e["aliases"]]
    }
    words = {w for surface in surfaces for w in re.findall(r"[a-z]+", surface)}
    for e in entities.values():
        for name in [e["canonical_name"], *e["aliases"]]:
            for variant in hyphenated_variants(name, words):
                if variant.lower() not in surfaces:
                    e["aliases"].append(variant)
                    surfaces.add(variant.lower())


def write_kb(path: Path = KB_PATH) -> int:
    entities = build_entities()
    with open(path, "w", encoding="utf-8") as f:
        for entity in entities:
            f.write(json.dumps(entity, ensure_ascii=False) + "\n")
    return len(entities)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=KB_PATH)
    args = parser.parse_args(argv)
    count = write_kb(args.out)
    print(f"wrote {count} concepts to {args.out}")  # noqa: T201 - CLI output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

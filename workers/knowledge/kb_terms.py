"""More curated histopathology vocabulary for ``build_kb`` (same line format as its GROUPS).

``build_kb.GROUPS`` holds the core lecture vocabulary; this module widens the KB to the
breadth Quilt-1M's UMLS validation had for histopathology: immunohistochemical markers,
organ sub-structures, cell types, stains and techniques, lesions and diagnoses by organ
(WHO classification names), morphological descriptors and microorganisms. Each line is
``canonical name|alias|alias...``. Site-specific tumours are written out by organ in
``ORGAN_TUMORS`` ("adenocarcinoma of the colon" and "colonic adenocarcinoma" are the same
concept); only combinations that are real diagnoses are listed.
"""

from __future__ import annotations

T_ANAT = "T017"
T_ORGAN = "T023"
T_TISSUE = "T024"
T_CELL = "T025"
T_CELLCOMP = "T026"
T_SUBST = "T031"
T_FINDING = "T033"
T_PATHFN = "T046"
T_DISEASE = "T047"
T_LABPROC = "T059"
T_PROTEIN = "T116"
T_REAGENT = "T130"
T_NEOPLASM = "T191"
T_ACQ_ABN = "T020"
T_CONGENITAL = "T019"
T_BACTERIUM = "T007"
T_FUNGUS = "T004"
T_VIRUS = "T005"
T_EUKARYOTE = "T204"
T_SPATIAL = "T082"

# Immunohistochemical markers (antigens detected in sections).
_MARKERS = """
CD1a
CD2
CD4
CD5
CD7
CD8
CD10
CD15
CD19
CD21
CD23
CD31
CD38
CD43
CD56
CD57
CD61
CD79a
CD99
CD123
CD138|syndecan-1
CD163
CD200
cytokeratin 5/6|CK5/6
cytokeratin 8/18|CAM 5.2
cytokeratin 19|CK19
AE1/AE3|pancytokeratin|pan-cytokeratin
high molecular weight cytokeratin|34betaE12
epithelial membrane antigen|EMA
carcinoembryonic antigen|CEA
napsin A
p40
p63
p57
p120 catenin
beta-catenin
cyclin D1
BCL2
BCL6
MUM1|IRF4
MYC|c-MYC
SOX11
PAX5
PAX2
terminal deoxynucleotidyl transferase|TdT
myeloperoxidase
lysozyme
glycophorin A
factor VIII-related antigen|von Willebrand factor
ERG
FLI1
podoplanin|D2-40
calretinin
mesothelin
HBME-1
thyroglobulin
calcitonin
parathyroid hormone
insulin
glucagon
somatostatin
gastrin
serotonin
neuron-specific enolase|NSE
INSM1
neurofilament
NeuN
Olig2
IDH1 R132H|IDH1 mutant protein
ATRX
H3 K27M
myogenin
MyoD1
caldesmon
calponin
smooth muscle myosin heavy chain
muscle-specific actin|HHF35
DOG1
STAT6
MDM2
CDK4
SATB2
TLE1
INI1|SMARCB1
BRG1|SMARCA4
BAP1
ALK
ROS1
PD-L1|programmed death ligand 1
MLH1
MSH2
MSH6
PMS2
androgen receptor
prostate-specific antigen|PSA
prostatic acid phosphatase
NKX3.1
alpha-methylacyl-CoA racemase|AMACR|P504S
uroplakin
GATA2
SF-1|steroidogenic factor 1
inhibin
OCT3/4|OCT4
SALL4
PLAP|placental alkaline phosphatase
alpha-fetoprotein|AFP
glypican-3
HepPar-1|hepatocyte paraffin 1
arginase-1
albumin in situ hybridization
villin
mammaglobin
GCDFP-15|gross cystic disease fluid protein 15
TRPS1
NKX2.2
NKX2.1
SOX2
SOX9
MITF
PRAME
tyrosinase
Langerin|CD207
fascin
kappa light chain
lambda light chain
immunoglobulin G4|IgG4
IgA
IgM
C4d
C3
fibrinogen
collagen IV
laminin
cytomegalovirus immunostain|CMV immunostain
Helicobacter immunostain
EBER in situ hybridization|EBER
HPV in situ hybridization
p16INK4a
MIB-1
phosphohistone H3|PHH3
"""

# Stains, reagents and techniques not in the core list.
_STAINS = """
diaminobenzidine|DAB|brown chromogen|DAB chromogen
chromogen
counterstain|hematoxylin counterstain
Romanowsky stain
Wright stain
May-Grunwald-Giemsa|MGG
Diff-Quik
Warthin-Starry stain|Warthin-Starry
Steiner stain
Fite stain|Fite-Faraco stain
Gomori methenamine silver
Jones silver stain|Jones stain|PAMS
phosphotungstic acid hematoxylin|PTAH
Luxol fast blue|LFB
Bielschowsky silver stain|Bielschowsky
Nissl stain|cresyl violet
Movat pentachrome
Sirius red|picrosirius red
orcein stain|orcein
Victoria blue
rhodanine stain|rhodanine
Fouchet stain
Hall bilirubin stain
Schmorl stain
Dieterle stain
Brown-Brenn stain
Brown-Hopps stain
auramine-rhodamine stain|auramine rhodamine
Kinyoun stain
methyl green pyronin
crystal violet
thioflavin T|thioflavin S
periodic acid-Schiff with diastase|PAS-D|PAS with diastase|diastase PAS
alcian blue PAS|AB-PAS
colloidal iron stain|colloidal iron
Grimelius stain
Gomori trichrome
chloroacetate esterase|Leder stain
nonspecific esterase
tartrate-resistant acid phosphatase|TRAP
"""

_TECHNIQUES = """
needle biopsy|needle core biopsy
punch biopsy
shave biopsy
endometrial curettage|curettage|endometrial curettings|dilation and curettage
pancreaticoduodenectomy|Whipple resection|Whipple procedure
incisional biopsy
endoscopic biopsy
wedge biopsy
bone marrow biopsy|trephine biopsy|bone marrow trephine|trephine
bone marrow aspirate
liver biopsy
renal biopsy|kidney biopsy
skin biopsy
skin excision|excision of skin
wide local excision|wide excision
re-excision|reexcision
transbronchial biopsy
sentinel lymph node biopsy|sentinel node biopsy
cell block
cytospin
liquid-based cytology|ThinPrep|SurePath
touch preparation|touch prep|imprint cytology
smear|cytologic smear
gross examination|grossing|macroscopic examination
microtome|microtomy
section|tissue section|histologic section
decalcification
tissue processing
fixation
mounting|coverslip
digital pathology
virtual microscopy
next-generation sequencing|NGS
immunocytochemistry
immunoelectron microscopy
chromogenic in situ hybridization|CISH
tissue microarray|TMA
laser capture microdissection
morphometry
Gleason grading|Gleason score
Nottingham grading|Nottingham grade
TNM staging|TNM stage
Breslow thickness
Clark level
mitotic count
Ki-67 index|proliferation index
"""

_ANATOMY = """
hepatic artery|hepatic arteries
portal vein|portal veins
hepatic vein
space of Disse|perisinusoidal space
canal of Hering
foveolar epithelium|gastric foveolar epithelium|surface foveolar epithelium
spiral arteriole|spiral arterioles|spiral artery|spiral arteries
renal allograft|kidney allograft|renal transplant|kidney transplant|transplanted kidney
femur|femoral
tibia|tibial
humerus|humeral
fibula
vertebral body|vertebra|vertebrae
bile canaliculus|bile canaliculi
zone 1|periportal zone
zone 3|centrilobular zone|perivenular zone
portal triad
limiting plate
interlobular bile duct
common bile duct
cystic duct
pancreatic duct
ampulla of Vater
sphincter of Oddi
gastric pit|foveola|gastric foveolae
gastric gland|oxyntic gland|fundic gland
pyloric gland|antral gland
gastric antrum|antrum
gastric body|corpus
gastric fundus
cardia
gastroesophageal junction|GE junction
Brunner gland|Brunner glands
plica circularis|plicae circulares
Peyer patch|Peyer patches
colonic crypt|crypt of Lieberkuhn|intestinal crypt|colonic crypts
colonic mucosa
large bowel|large intestine
small bowel
cecum
sigmoid colon
transverse colon
ascending colon
descending colon
ileocecal valve
anal canal
dentate line|pectinate line
taenia coli
myenteric plexus|Auerbach plexus
submucosal plexus|Meissner plexus
ganglion cell|ganglion cells
lacteal
mesentery
omentum
alveolar wall|alveolar septum|alveolar septa
alveolar duct
alveolar sac
respiratory bronchiole
terminal bronchiole
bronchial cartilage
bronchial gland
visceral pleura
parietal pleura
pulmonary artery
pulmonary vein
hilum
nephron
Bowman capsule|Bowman's capsule
Bowman space
glomerular basement membrane|GBM
mesangium|mesangial matrix
glomerular capillary|glomerular capillaries
afferent arteriole
efferent arteriole
juxtaglomerular apparatus
macula densa
proximal convoluted tubule|proximal tubule
distal convoluted tubule|distal tubule
loop of Henle
collecting duct
renal pelvis
renal papilla
interstitial capillary
urothelium|transitional epithelium of the bladder
detrusor muscle
lamina muscularis
prostatic gland|prostatic acini
prostatic stroma
seminal vesicle
seminiferous tubule|seminiferous tubules
rete testis
tunica albuginea
vas deferens
corpus luteum
corpus albicans
ovarian follicle|follicle
primordial follicle
Graafian follicle
ovarian stroma
ovarian cortex
endometrial gland|endometrial glands
endometrial stroma
decidua
chorionic villus|chorionic villi
umbilical cord
fetal membranes
ectocervix
endocervix
transformation zone|squamocolumnar junction
vagina
vulva
terminal duct lobular unit|TDLU
lactiferous duct
mammary duct
mammary lobule
nipple
areola
thyroid follicle|thyroid follicles
parafollicular cell
adrenal cortex
adrenal medulla
zona glomerulosa
zona fasciculata
zona reticularis
anterior pituitary|adenohypophysis
posterior pituitary|neurohypophysis
pineal gland
hair follicle
sebaceous gland
sweat gland|eccrine gland
apocrine gland
arrector pili muscle
papillary dermis
reticular dermis
dermal papilla
rete ridges|rete pegs
dermoepidermal junction
stratum basale
stratum granulosum
stratum lucidum
nail
lymph node cortex
paracortex
medullary cord|medullary cords
subcapsular sinus
lymphoid follicle|lymphoid follicles
primary follicle
secondary follicle
marginal zone
periarteriolar lymphoid sheath|PALS
splenic sinusoid
Hassall corpuscle|Hassall corpuscles
thymic cortex
thymic medulla
tonsillar crypt
periosteum
endosteum
bone trabecula|trabecular bone|cancellous bone
cortical bone|compact bone
osteon
lamellar bone
woven bone
growth plate|epiphyseal plate
hyaline cartilage
elastic cartilage
fibrocartilage
articular cartilage
synovium|synovial membrane
tendon
ligament
intervertebral disc
perichondrium
epimysium
perimysium
endomysium
sarcomere
myocardium
endocardium
epicardium|visceral pericardium
pericardium
heart valve|cardiac valve
aortic valve
mitral valve
tricuspid valve
coronary artery
aorta
tunica intima|intima
tunica media|media
tunica adventitia
internal elastic lamina
external elastic lamina
vasa vasorum
venule
sinusoid
choroid plexus
ependyma
hippocampus
basal ganglia
thalamus
hypothalamus
brainstem
dura mater
arachnoid mater|arachnoid
pia mater
cerebrospinal fluid
retina
optic disc|optic disk|optic nerve head
optic nerve
fundus of the eye|ocular fundus|fundus
cornea
conjunctiva
lens
sclera
choroid
iris
ciliary body
retinal vessel|retinal vessels
nasal cavity
nasopharynx
oropharynx
hypopharynx
vocal cord|vocal fold
epiglottis
oral cavity
tongue
gingiva
hard palate
soft palate
lip
tooth
dental pulp
parotid gland
submandibular gland
sublingual gland
serous acinus
mucous acinus
serous demilune
intercalated duct
striated duct
excretory duct
islet cell
exocrine pancreas
endocrine pancreas
perineurium
epineurium
endoneurium
node of Ranvier
myelin sheath|myelin
axon
dendrite
synapse
neuromuscular junction
gastrointestinal tract|GI tract|gastrointestinal
upper gastrointestinal tract
lower gastrointestinal tract
soft tissue
mediastinum
retroperitoneum
abdominal wall
diaphragm
pleural cavity
peritoneal cavity
pericardial cavity
"""

_CELLS = """
Ito cell|hepatic stellate cell|stellate cell
oval cell|hepatic progenitor cell
G cell
D cell
enterochromaffin cell
enterochromaffin-like cell|ECL cell
M cell
tuft cell
intraepithelial lymphocyte|intraepithelial lymphocytes
Clara cell|club cell
type I pneumocyte
type II pneumocyte
alveolar epithelial cell
ciliated cell
basal reserve cell|reserve cell
juxtaglomerular cell
parietal epithelial cell
tubular epithelial cell
umbrella cell
urothelial cell
decidual cell
syncytiotrophoblast
cytotrophoblast
Hofbauer cell
luteal cell
hilus cell
spermatogonium|spermatogonia
spermatid
spermatozoon|sperm
oogonium
principal cell
intercalated cell
chromaffin cell
pituicyte
pinealocyte
thyrocyte|thyroid follicular cell
oxyphil cell|oncocytic cell|Hurthle cell
parathyroid chief cell
Merkel cell
sebocyte
hair matrix cell
dendritic cell
follicular dendritic cell
interdigitating dendritic cell
B cell|B lymphocyte|B lymphocytes
T cell|T lymphocyte|T lymphocytes
natural killer cell|NK cell
helper T cell|CD4 T cell
cytotoxic T cell|CD8 T cell
centrocyte
centroblast
immunoblast
tingible body macrophage
histiocyte
Langhans giant cell|Langhans giant cells|Langhans-type giant cell
foreign body giant cell
Touton giant cell
Aschoff cell|Anitschkow cell
Anitschkow myocyte
lipophage
siderophage|hemosiderin-laden macrophage
heart failure cell
myeloblast
promyelocyte
myelocyte
metamyelocyte
band neutrophil|band form
erythroblast|normoblast
reticulocyte
lymphoblast
lipoblast|lipoblasts
plasmablast
blast cell|blasts
hairy cell
Sezary cell
smudge cell
Mott cell
ependymal cell
choroid plexus cell
Betz cell
pyramidal cell
granule cell
satellite cell
muscle satellite cell
myoblast
myotube
chondroblast
osteoprogenitor cell
stem cell
progenitor cell
mesenchymal cell
epithelial cell
glandular cell
columnar cell
cuboidal cell
clear cell
oncocyte
decoy cell
atypical cell|atypical cells
malignant cell|malignant cells
apoptotic cell|apoptotic body
mitotic figure|mitotic figures
tumor giant cell
osteoclast-like giant cell
Warthin-Finkeldey cell
Reed-Sternberg variant|lacunar cell|popcorn cell
Hodgkin cell
physaliferous cell
Pautrier microabscess
"""

_DESCRIPTORS = """
desmoplastic stroma|desmoplastic reaction|stromal desmoplasia
prominent nucleoli|prominent nucleolus|macronucleoli
mitotic activity
atypical mitotic figure
tumor necrosis
comedonecrosis|comedo necrosis
geographic necrosis
caseous necrosis|caseation|caseating necrosis
gangrenous necrosis
palisading|peripheral palisading
retraction artifact|retraction artefact|stromal retraction
crush artifact|crush artefact
cautery artifact
freezing artifact
tissue folding
nuclear clearing|Orphan Annie eye nuclei
nuclear overlapping
nuclear crowding|crowded nuclei
nuclear enlargement
nuclear membrane irregularity
nuclear inclusion|intranuclear inclusion
cytoplasmic inclusion
intranuclear cytoplasmic pseudoinclusion
perinuclear halo|koilocytic atypia
signet ring morphology
oncocytic change|oncocytic
clear cell change
squamous differentiation
glandular differentiation
neuroendocrine differentiation
sarcomatoid|sarcomatoid change
rhabdoid|rhabdoid morphology
plasmacytoid
microvesicular steatosis
macrovesicular steatosis
ballooning degeneration|ballooned hepatocytes|hepatocyte ballooning
feathery degeneration
bridging fibrosis
bridging necrosis
piecemeal necrosis
lobular inflammation
portal inflammation
ductular reaction
bile plug|bile plugs|canalicular cholestasis
regenerative nodule|regenerative nodules
crescent|glomerular crescent|crescents
wire loop lesion
spike and dome
mesangial expansion|mesangial proliferation
mesangial hypercellularity
Kimmelstiel-Wilson nodule
hyaline arteriolosclerosis
hyperplastic arteriolosclerosis|onion skinning
thyroidization
tubular atrophy
interstitial fibrosis
interstitial inflammation
tubulitis
casts|tubular casts
foot process effacement
hyaline membrane|hyaline membranes
alveolar damage|diffuse alveolar damage
intra-alveolar hemorrhage
organizing pneumonia
honeycombing|honeycomb change
fibroblastic focus|fibroblastic foci
lepidic pattern|lepidic growth
micropapillary pattern
solid sheets
nests|tumor nests
cords
single file pattern|Indian file
glandular pattern
tubular pattern
papillary pattern
follicular pattern
alveolar pattern
insular pattern
diffuse pattern
nodular pattern
targetoid pattern
starry sky pattern|starry sky appearance
onion skin pattern
whorls|whorled pattern
Verocay bodies|Verocay body
Antoni A area
Antoni B area
pseudopalisading necrosis|pseudopalisading
microvascular proliferation
perivascular pseudorosettes|perivascular pseudorosette
Homer Wright rosettes|Homer Wright rosette
Flexner-Wintersteiner rosettes|Flexner-Wintersteiner rosette
Schiller-Duval body|Schiller-Duval bodies
hobnail cells|hobnail
Orphan Annie nuclei
coffee bean nuclei
cigar-shaped nuclei
owl eye nuclei
apple-green birefringence
Birbeck granules
Civatte bodies|colloid bodies
Kamino bodies
Michaelis-Gutmann bodies|Michaelis-Gutmann body
asteroid body|asteroid bodies
Cowdry type A inclusion
owl's eye inclusion
Donovan bodies
Dutcher bodies
ferruginous body|asbestos body
corpora amylacea
Rosenthal fibers
neurofibrillary tangles|neurofibrillary tangle
senile plaques|amyloid plaques
Pick bodies
Hirano bodies
granulovacuolar degeneration
spongiform change
red neurons|red neuron
gliosis
contraction band necrosis|contraction bands
myocyte disarray
wavy fibers
Aschoff body|Aschoff bodies
vegetations|vegetation
fatty streak
fibrous cap
atheroma|atheromatous plaque
cholesterol clefts
intimal thickening
fibrinoid change
leukocytoclasis
thrombus|thrombi
lines of Zahn
recanalization
organization
cryptitis and crypt abscesses|crypt abscess|crypt abscesses
crypt distortion|architectural distortion
crypt branching
crypt atrophy
villous atrophy|villous blunting
crypt hyperplasia
intraepithelial lymphocytosis
pseudopolyps|pseudopolyp
transmural inflammation
skip lesions
fissuring ulcer
creeping fat
non-caseating granuloma|noncaseating granuloma
epithelioid granuloma
foreign body granuloma
suppurative granuloma
palisading granuloma
lymphoid aggregate|lymphoid aggregates
lymphoplasmacytic infiltrate
neutrophilic infiltrate
eosinophilic infiltrate
mixed inflammatory infiltrate
microabscess|microabscesses
exocytosis
interface dermatitis
vacuolar change
band-like infiltrate|lichenoid infiltrate
saw-tooth rete ridges|sawtooth rete ridges
Munro microabscess|Munro microabscesses
Kogoj pustule
Max-Joseph space
horn cyst|horn cysts|pseudohorn cysts
intercellular bridges
individual cell keratinization
koilocytosis
basaloid cells|basaloid
stromal invasion
angiolymphatic invasion
extranodal extension
surgical margin|resection margin
positive margin
negative margin
tumor budding
tumor-infiltrating lymphocytes|TILs
stromal reaction
peritumoral inflammation
hemosiderin deposition
iron deposition
copper deposition
dystrophic calcification
metastatic calcification
psammomatous calcification
ossification|metaplastic bone
chondroid matrix
myxoid stroma|myxoid change|myxoid
hyalinized stroma
edematous stroma
fibrous stroma
sclerotic stroma|sclerosis
reactive atypia
cytologic atypia
architectural atypia
crowded glands|gland crowding
back-to-back glands
infiltrative glands
cribriform glands
fused glands
dilated glands|cystically dilated glands
mucin pools|extracellular mucin
intracytoplasmic mucin
intracellular lumina
apical snouts|apocrine snouts
goblet cell depletion|mucin depletion
Paneth cell metaplasia
pyloric metaplasia
oncocytic metaplasia
apocrine metaplasia
osseous metaplasia
tubal metaplasia
decidualization
Arias-Stella reaction
secretory endometrium
proliferative endometrium
menstrual endometrium
atrophic endometrium
hyperplasia without atypia
atypical hyperplasia
usual ductal hyperplasia
atypical ductal hyperplasia
columnar cell change
flat epithelial atypia
sclerosing adenosis
adenosis
radial scar
duct ectasia
fibrocystic change|fibrocystic changes
"""

_DISEASES = """
chronic hepatitis
acute hepatitis
autoimmune hepatitis
viral hepatitis
hepatitis B
hepatitis C
alcoholic hepatitis
nonalcoholic fatty liver disease|NAFLD
nonalcoholic steatohepatitis|NASH
fatty liver|fatty change
primary biliary cholangitis|primary biliary cirrhosis|PBC
primary sclerosing cholangitis|PSC
hemochromatosis
Wilson disease
alpha-1 antitrypsin deficiency
biliary atresia
Budd-Chiari syndrome
chronic passive congestion|nutmeg liver
hepatic abscess|liver abscess
chronic gastritis
acute gastritis
autoimmune gastritis
atrophic gastritis
reactive gastropathy|chemical gastropathy
gastric ulcer
duodenal ulcer
Zollinger-Ellison syndrome
Menetrier disease
achalasia
reflux esophagitis
Candida esophagitis
herpes esophagitis
lymphocytic colitis
collagenous colitis
microscopic colitis
infectious colitis
pseudomembranous colitis
ischemic colitis
inflammatory bowel disease|IBD
diverticulitis
diverticulosis
Hirschsprung disease
Whipple disease
tropical sprue
hyperplastic polyp
inflammatory polyp
juvenile polyp
hamartomatous polyp
Peutz-Jeghers polyp
familial adenomatous polyposis|FAP
Lynch syndrome
hemorrhoids
chronic pancreatitis
acute pancreatitis
autoimmune pancreatitis
pancreatic pseudocyst
cystic fibrosis
acute cholecystitis
chronic cholecystitis
cholelithiasis|gallstones
cholesterolosis
chronic obstructive pulmonary disease|COPD
chronic bronchitis
bronchopneumonia
lobar pneumonia
interstitial pneumonia
usual interstitial pneumonia|UIP
nonspecific interstitial pneumonia|NSIP
hypersensitivity pneumonitis
aspiration pneumonia
lung abscess
pulmonary embolism
pulmonary infarct|pulmonary infarction
pulmonary edema
acute respiratory distress syndrome|ARDS
pneumoconiosis
silicosis
asbestosis
anthracosis
pulmonary hypertension
minimal change disease
focal segmental glomerulosclerosis|FSGS
membranous nephropathy|membranous glomerulonephritis
membranoproliferative glomerulonephritis|MPGN
IgA nephropathy|Berger disease
lupus nephritis
post-infectious glomerulonephritis|poststreptococcal glomerulonephritis
crescentic glomerulonephritis|rapidly progressive glomerulonephritis
hypertensive nephrosclerosis|nephrosclerosis
acute interstitial nephritis
chronic kidney disease
polycystic kidney disease
renal infarct
hydronephrosis
cystitis
interstitial cystitis
cystitis cystica
cystitis glandularis
malakoplakia
prostatitis
benign prostatic hyperplasia|BPH|nodular hyperplasia of the prostate
prostatic intraepithelial neoplasia|PIN
orchitis
cryptorchidism
testicular atrophy
endometrial hyperplasia
endometritis
chronic endometritis
cervicitis
salpingitis
pelvic inflammatory disease
ectopic pregnancy
hydatidiform mole|molar pregnancy
complete hydatidiform mole
partial hydatidiform mole
chorioamnionitis
villitis
polycystic ovary syndrome|PCOS
ovarian cyst
follicular cyst
corpus luteum cyst
endometrioma|chocolate cyst
mastitis
fat necrosis of the breast
gynecomastia
Hashimoto thyroiditis|chronic lymphocytic thyroiditis
subacute thyroiditis|de Quervain thyroiditis|granulomatous thyroiditis
Riedel thyroiditis
multinodular goiter|nodular goiter
thyroid nodule
hyperthyroidism
hypothyroidism
parathyroid hyperplasia
parathyroid adenoma
adrenal hyperplasia
Addison disease
Cushing syndrome
pituitary adenoma
eczema|eczematous dermatitis
atopic dermatitis
contact dermatitis
seborrheic dermatitis
lupus erythematosus
discoid lupus erythematosus
dermatomyositis
erythema multiforme
erythema nodosum
bullous pemphigoid
pemphigus vulgaris
dermatitis herpetiformis
urticaria
rosacea
acne vulgaris
granuloma annulare
morphea|scleroderma
lichen sclerosus
lichen simplex chronicus
actinic keratosis|solar keratosis
seborrheic keratosis
verruca vulgaris|common wart|wart
molluscum contagiosum
epidermal inclusion cyst|epidermoid cyst
pilar cyst|trichilemmal cyst
dermatofibroma|benign fibrous histiocytoma
keloid
hypertrophic scar
scar
ulcer
wound healing
pyogenic granuloma|lobular capillary hemangioma
osteoporosis
osteomalacia
Paget disease of bone
osteoarthritis
rheumatoid arthritis
fracture callus|callus
avascular necrosis|osteonecrosis
fibrous dysplasia
osteochondroma
enchondroma
giant cell tumor of bone
aneurysmal bone cyst
simple bone cyst
muscular dystrophy
Duchenne muscular dystrophy
inflammatory myopathy
polymyositis
neurogenic atrophy
myasthenia gravis
multiple sclerosis
Parkinson disease
Huntington disease
Creutzfeldt-Jakob disease|prion disease
cerebral infarct|stroke
cerebral hemorrhage
meningitis
encephalitis
brain abscess
cerebral edema
hydrocephalus
hypertensive heart disease
ischemic heart disease
cardiomyopathy
dilated cardiomyopathy
hypertrophic cardiomyopathy
rheumatic heart disease
rheumatic fever
pericarditis
aortic stenosis
aortic dissection
aneurysm
giant cell arteritis|temporal arteritis
Takayasu arteritis
polyarteritis nodosa
granulomatosis with polyangiitis|Wegener granulomatosis
Kawasaki disease
thromboangiitis obliterans|Buerger disease
varicose veins
deep vein thrombosis
anemia
sickle cell disease|sickle cell anemia
thalassemia
hemolytic anemia
iron deficiency anemia
megaloblastic anemia
myelodysplastic syndrome|MDS
myeloproliferative neoplasm
polycythemia vera
essential thrombocythemia
primary myelofibrosis|myelofibrosis
chronic myeloid leukemia|CML
acute myeloid leukemia|AML
acute lymphoblastic leukemia|ALL
chronic lymphocytic leukemia|CLL
hairy cell leukemia
multiple myeloma|plasma cell myeloma
monoclonal gammopathy
reactive lymphadenopathy|reactive lymphoid hyperplasia
follicular hyperplasia
paracortical hyperplasia
sinus histiocytosis
Castleman disease
Kikuchi disease|histiocytic necrotizing lymphadenitis
Rosai-Dorfman disease
Langerhans cell histiocytosis
infectious mononucleosis
cat scratch disease
toxoplasmosis
HIV lymphadenopathy
splenomegaly
hypersplenism
thymoma
thymic hyperplasia
sepsis
shock
disseminated intravascular coagulation|DIC
systemic lupus erythematosus|SLE
Sjogren syndrome
systemic sclerosis
IgG4-related disease
graft-versus-host disease|GVHD
transplant rejection|rejection
acute cellular rejection
chronic active gastritis|active chronic gastritis
high-grade squamous intraepithelial lesion|HSIL
low-grade squamous intraepithelial lesion|LSIL
antibody-mediated rejection
diabetes mellitus
obesity
malnutrition
cachexia
leprosy|Hansen disease
syphilis
actinomycosis
nocardiosis
histoplasmosis
coccidioidomycosis
blastomycosis
cryptococcosis
aspergillosis
mucormycosis|zygomycosis
candidiasis
pneumocystis pneumonia|PCP
cytomegalovirus infection|CMV infection
herpes simplex infection
varicella zoster infection|herpes zoster|shingles
measles
COVID-19|SARS-CoV-2 infection
malaria
leishmaniasis
trypanosomiasis|Chagas disease
strongyloidiasis
echinococcosis|hydatid cyst
cysticercosis
cryptosporidiosis
"""

_MICROBES = """
Escherichia coli|E. coli
Staphylococcus aureus
Streptococcus
Streptococcus pneumoniae
Pseudomonas aeruginosa
Klebsiella
Clostridioides difficile|Clostridium difficile|C. difficile
Treponema pallidum
Mycobacterium leprae
Mycobacterium avium complex|MAC
Nocardia
Bartonella henselae
Tropheryma whipplei
Chlamydia trachomatis
Neisseria gonorrhoeae
Listeria
Salmonella
Shigella
Campylobacter
Legionella
acid-fast bacilli|AFB|acid fast bacilli
gram-positive cocci
gram-negative rods|gram-negative bacilli
spirochetes|spirochete
fungal hyphae|hyphae
yeast|yeast forms
pseudohyphae
spherules
Mucor|Rhizopus
Coccidioides
Blastomyces
Sporothrix
Toxoplasma gondii
Plasmodium
Leishmania
Trypanosoma cruzi
Strongyloides stercoralis
Echinococcus
Cryptosporidium
Trichomonas vaginalis
hepatitis B virus|HBV
hepatitis C virus|HCV
human immunodeficiency virus|HIV
varicella zoster virus|VZV
JC virus|JC polyomavirus
BK virus|BK polyomavirus
adenovirus
molluscum contagiosum virus
SARS-CoV-2
"""

# Organ: (adjective used in the name, [tumours of that organ]). Names are written
# "<adjective> <tumour>" with the alias "<tumour> of the <organ>".
ORGAN_TUMORS: dict[str, tuple[str, list[str]]] = {
    "colon": (
        "colonic",
        [
            "adenocarcinoma",
            "mucinous adenocarcinoma",
            "adenoma",
            "neuroendocrine tumor",
            "lymphoma",
            "carcinoma",
            "signet ring cell carcinoma",
        ],
    ),
    "rectum": ("rectal", ["adenocarcinoma", "neuroendocrine tumor", "adenoma", "carcinoma"]),
    "stomach": (
        "gastric",
        [
            "adenocarcinoma",
            "lymphoma",
            "MALT lymphoma",
            "neuroendocrine tumor",
            "stromal tumor",
            "carcinoma",
            "signet ring cell carcinoma",
            "adenoma",
        ],
    ),
    "esophagus": (
        "esophageal",
        [
            "adenocarcinoma",
            "squamous cell carcinoma",
            "carcinoma",
            "leiomyoma",
            "squamous papilloma",
        ],
    ),
    "small intestine": (
        "small intestinal",
        ["adenocarcinoma", "neuroendocrine tumor", "lymphoma", "adenoma"],
    ),
    "appendix": ("appendiceal", ["neuroendocrine tumor", "mucinous neoplasm", "adenocarcinoma"]),
    "anus": ("anal", ["squamous cell carcinoma", "intraepithelial neoplasia", "carcinoma"]),
    "liver": ("hepatic", ["adenoma", "hemangioma", "metastasis", "angiosarcoma"]),
    "gallbladder": ("gallbladder", ["adenocarcinoma", "carcinoma", "adenoma"]),
    "pancreas": (
        "pancreatic",
        [
            "adenocarcinoma",
            "ductal adenocarcinoma",
            "neuroendocrine tumor",
            "intraductal papillary mucinous neoplasm",
            "mucinous cystic neoplasm",
            "serous cystadenoma",
            "acinar cell carcinoma",
            "intraepithelial neoplasia",
            "carcinoma",
        ],
    ),
    "lung": (
        "pulmonary",
        [
            "adenocarcinoma",
            "squamous cell carcinoma",
            "carcinoid tumor",
            "hamartoma",
            "small cell carcinoma",
            "large cell neuroendocrine carcinoma",
            "metastasis",
            "carcinoma",
            "lymphoma",
            "adenocarcinoma in situ",
        ],
    ),
    "breast": (
        "mammary",
        [
            "carcinoma",
            "adenocarcinoma",
            "lobular carcinoma",
            "ductal carcinoma",
            "tubular carcinoma",
            "mucinous carcinoma",
            "medullary carcinoma",
            "metaplastic carcinoma",
            "papilloma",
            "lymphoma",
            "angiosarcoma",
        ],
    ),
    "prostate": (
        "prostatic",
        [
            "adenocarcinoma",
            "acinar adenocarcinoma",
            "ductal adenocarcinoma",
            "carcinoma",
            "intraepithelial neoplasia",
        ],
    ),
    "kidney": (
        "renal",
        [
            "clear cell carcinoma",
            "papillary carcinoma",
            "chromophobe carcinoma",
            "oncocytoma",
            "angiomyolipoma",
            "adenoma",
            "lymphoma",
        ],
    ),
    "urinary bladder": (
        "bladder",
        [
            "urothelial carcinoma",
            "carcinoma",
            "squamous cell carcinoma",
            "adenocarcinoma",
            "papilloma",
            "carcinoma in situ",
            "papillary urothelial neoplasm",
        ],
    ),
    "thyroid gland": (
        "thyroid",
        [
            "adenoma",
            "follicular adenoma",
            "anaplastic carcinoma",
            "lymphoma",
            "poorly differentiated carcinoma",
            "carcinoma",
            "oncocytic carcinoma",
        ],
    ),
    "skin": (
        "cutaneous",
        [
            "squamous cell carcinoma",
            "melanoma",
            "lymphoma",
            "T-cell lymphoma",
            "B-cell lymphoma",
            "metastasis",
            "angiosarcoma",
            "leiomyoma",
            "neurofibroma",
        ],
    ),
    "ovary": (
        "ovarian",
        [
            "serous carcinoma",
            "mucinous carcinoma",
            "endometrioid carcinoma",
            "clear cell carcinoma",
            "serous cystadenoma",
            "mucinous cystadenoma",
            "teratoma",
            "fibroma",
            "thecoma",
            "granulosa cell tumor",
            "Brenner tumor",
            "carcinoma",
            "borderline tumor",
            "dysgerminoma",
        ],
    ),
    "uterus": (
        "uterine",
        [
            "leiomyoma",
            "leiomyosarcoma",
            "carcinosarcoma",
            "serous carcinoma",
            "stromal sarcoma",
            "adenomyoma",
        ],
    ),
    "endometrium": (
        "endometrial",
        [
            "adenocarcinoma",
            "endometrioid carcinoma",
            "serous carcinoma",
            "clear cell carcinoma",
            "stromal sarcoma",
            "carcinoma",
        ],
    ),
    "cervix": (
        "cervical",
        ["squamous cell carcinoma", "adenocarcinoma", "adenocarcinoma in situ", "carcinoma"],
    ),
    "testis": (
        "testicular",
        [
            "germ cell tumor",
            "seminoma",
            "embryonal carcinoma",
            "teratoma",
            "yolk sac tumor",
            "Leydig cell tumor",
            "Sertoli cell tumor",
            "lymphoma",
            "mixed germ cell tumor",
        ],
    ),
    "brain": ("cerebral", ["metastasis", "lymphoma", "glioma"]),
    "salivary gland": (
        "salivary",
        [
            "adenoid cystic carcinoma",
            "mucoepidermoid carcinoma",
            "acinic cell carcinoma",
            "duct carcinoma",
            "pleomorphic adenoma",
            "basal cell adenoma",
            "oncocytoma",
            "carcinoma ex pleomorphic adenoma",
        ],
    ),
    "adrenal gland": (
        "adrenal",
        [
            "cortical adenoma",
            "cortical carcinoma",
            "pheochromocytoma",
            "neuroblastoma",
            "myelolipoma",
            "metastasis",
        ],
    ),
    "bone": (
        "bone",
        [
            "metastasis",
            "lymphoma",
            "giant cell tumor",
            "osteoid osteoma",
            "osteoblastoma",
            "chordoma",
        ],
    ),
    "soft tissue": (
        "soft tissue",
        [
            "sarcoma",
            "leiomyosarcoma",
            "liposarcoma",
            "synovial sarcoma",
            "undifferentiated pleomorphic sarcoma",
            "myxofibrosarcoma",
            "fibromatosis",
            "solitary fibrous tumor",
            "nodular fasciitis",
            "lipoma",
        ],
    ),
    "lymph node": (
        "nodal",
        [
            "metastasis",
            "lymphoma",
            "marginal zone lymphoma",
            "T-cell lymphoma",
            "metastatic carcinoma",
        ],
    ),
    "oral cavity": (
        "oral",
        ["squamous cell carcinoma", "papilloma", "fibroma", "carcinoma"],
    ),
    "larynx": ("laryngeal", ["squamous cell carcinoma", "papilloma", "carcinoma"]),
    "nasopharynx": ("nasopharyngeal", ["carcinoma", "angiofibroma", "lymphoma"]),
    "pleura": ("pleural", ["mesothelioma", "metastasis"]),
    "peritoneum": ("peritoneal", ["mesothelioma", "carcinomatosis", "metastasis"]),
    "heart": ("cardiac", ["myxoma", "rhabdomyoma", "angiosarcoma", "metastasis"]),
    "spleen": ("splenic", ["marginal zone lymphoma", "hemangioma", "lymphoma"]),
    "eye": ("ocular", ["melanoma", "lymphoma"]),
    "bile duct": ("biliary", ["adenocarcinoma", "intraepithelial neoplasia", "adenoma"]),
    "thymus": ("thymic", ["carcinoma", "lymphoma"]),
    "parathyroid gland": ("parathyroid", ["carcinoma"]),
    "pituitary gland": ("pituitary", ["carcinoma"]),
    "vulva": ("vulvar", ["squamous cell carcinoma", "intraepithelial neoplasia"]),
    "penis": ("penile", ["squamous cell carcinoma"]),
}

# Tumour names that are not organ-specific, beyond the core list.
_NEOPLASMS = """
adenosquamous carcinoma
sarcomatoid carcinoma
undifferentiated carcinoma
anaplastic carcinoma
carcinosarcoma
papillary carcinoma
clear cell carcinoma
oncocytoma
carcinoid tumor|carcinoid
neuroendocrine carcinoma
large cell neuroendocrine carcinoma
Merkel cell carcinoma
sebaceous carcinoma
adnexal carcinoma
basaloid squamous cell carcinoma
verrucous carcinoma
keratoacanthoma
Bowen disease|squamous cell carcinoma in situ
lentigo maligna
melanoma in situ
acral lentiginous melanoma
nodular melanoma
superficial spreading melanoma
desmoplastic melanoma
dysplastic nevus|atypical nevus
Spitz nevus
blue nevus
congenital nevus
junctional nevus
compound nevus
intradermal nevus
lentigo|solar lentigo
trichoepithelioma
pilomatricoma
syringoma
cylindroma
hidradenoma
dermatofibrosarcoma protuberans|DFSP
atypical fibroxanthoma
mycosis fungoides
anaplastic large cell lymphoma
peripheral T-cell lymphoma
mantle cell lymphoma
marginal zone lymphoma
MALT lymphoma|extranodal marginal zone lymphoma
small lymphocytic lymphoma
lymphoplasmacytic lymphoma
primary effusion lymphoma
plasmablastic lymphoma
nodular sclerosis Hodgkin lymphoma
mixed cellularity Hodgkin lymphoma
nodular lymphocyte predominant Hodgkin lymphoma
classic Hodgkin lymphoma|classical Hodgkin lymphoma
histiocytic sarcoma
myeloid sarcoma|chloroma
mastocytosis
hemangioblastoma
hemangiopericytoma
glomus tumor
lymphangioma
epithelioid hemangioendothelioma
pleomorphic sarcoma
synovial sarcoma
myxoid liposarcoma
well-differentiated liposarcoma
dedifferentiated liposarcoma
alveolar rhabdomyosarcoma
embryonal rhabdomyosarcoma
alveolar soft part sarcoma
clear cell sarcoma
epithelioid sarcoma
malignant peripheral nerve sheath tumor|MPNST
granular cell tumor
desmoid tumor|desmoid-type fibromatosis
fibrosarcoma
fibroma
myxoma
angiomyolipoma
perivascular epithelioid cell tumor|PEComa
inflammatory myofibroblastic tumor
solitary fibrous tumor
nodular fasciitis
giant cell tumor of tendon sheath|tenosynovial giant cell tumor
chondroblastoma
chondromyxoid fibroma
osteoid osteoma
osteoblastoma
chordoma
adamantinoma
ameloblastoma
odontogenic keratocyst
craniopharyngioma
ependymoma
pilocytic astrocytoma
diffuse astrocytoma
anaplastic astrocytoma
diffuse midline glioma
pleomorphic xanthoastrocytoma
subependymal giant cell astrocytoma
ganglioglioma
dysembryoplastic neuroepithelial tumor|DNET
central neurocytoma
pineoblastoma
atypical teratoid rhabdoid tumor|ATRT
choroid plexus papilloma
primary CNS lymphoma
retinoblastoma
ganglioneuroma
ganglioneuroblastoma
paraganglioma
pheochromocytoma
nephroblastoma
mesoblastic nephroma
hepatoblastoma
pancreatoblastoma
pleuropulmonary blastoma
embryonal carcinoma
mixed germ cell tumor
dysgerminoma
immature teratoma
mature cystic teratoma|dermoid cyst
Sertoli-Leydig cell tumor
granulosa cell tumor
adult granulosa cell tumor
juvenile granulosa cell tumor
thecoma
fibrothecoma
Brenner tumor
serous borderline tumor
mucinous borderline tumor
high-grade serous carcinoma
low-grade serous carcinoma
serous cystadenoma
mucinous cystadenoma
cystadenofibroma
adenomatoid tumor
gestational trophoblastic disease
placental site trophoblastic tumor
invasive mole
endometrial stromal sarcoma
adenosarcoma
smooth muscle tumor of uncertain malignant potential|STUMP
intraductal papilloma
ductal adenoma
tubular adenoma of the breast
lactating adenoma
papillary carcinoma of the breast
apocrine carcinoma
inflammatory carcinoma
Paget disease of the nipple
triple-negative breast cancer|triple negative carcinoma
invasive carcinoma of no special type|invasive breast carcinoma NST
adenoid cystic carcinoma
mucoepidermoid carcinoma
acinic cell carcinoma
salivary duct carcinoma
polymorphous adenocarcinoma
basal cell adenoma
oncocytic adenoma
Hurthle cell carcinoma
follicular adenoma
noninvasive follicular thyroid neoplasm with papillary-like nuclear features|NIFTP
hyalinizing trabecular tumor
parathyroid carcinoma
adrenocortical adenoma
adrenocortical carcinoma
insulinoma
gastrinoma
glucagonoma
VIPoma
solid pseudopapillary neoplasm
intraductal papillary mucinous neoplasm|IPMN
mucinous cystic neoplasm
pancreatic intraepithelial neoplasia|PanIN
hepatocellular adenoma
focal nodular hyperplasia
fibrolamellar carcinoma
biliary hamartoma|von Meyenburg complex
bile duct adenoma
intrahepatic cholangiocarcinoma
extrahepatic cholangiocarcinoma
traditional serrated adenoma
tubulovillous adenoma
serrated polyp
adenocarcinoma in situ
minimally invasive adenocarcinoma
invasive mucinous adenocarcinoma
lepidic adenocarcinoma
acinar adenocarcinoma
solid adenocarcinoma
micropapillary adenocarcinoma
atypical adenomatous hyperplasia
typical carcinoid
atypical carcinoid
pulmonary hamartoma
sclerosing pneumocytoma
papillary renal cell carcinoma
clear cell renal cell carcinoma
chromophobe renal cell carcinoma
collecting duct carcinoma
papillary urothelial carcinoma
urothelial carcinoma in situ
inverted papilloma
nephrogenic adenoma
prostatic adenocarcinoma|prostate cancer
seminoma of the testis
metastatic carcinoma
metastatic melanoma
metastatic adenocarcinoma
carcinoma of unknown primary
colorectal cancer|colorectal carcinoma
lung cancer
breast cancer
gastric cancer
liver cancer
cancer|malignant neoplasm
tumor|tumour|mass|lesion
benign neoplasm|benign tumor
precancerous lesion|premalignant lesion
borderline tumor
intraepithelial neoplasia
"""

# Findings and general pathology, beyond the core list.
_FINDINGS = """
atypia
necrotic debris
karyorrhexis|karyorrhectic debris
pyknosis|pyknotic nuclei
karyolysis
cellular swelling|hydropic change|hydropic degeneration
fatty degeneration
hyaline change
mucoid degeneration
cystic change
cystic degeneration
hemorrhagic necrosis
ischemia
hypoxia
reperfusion injury
hyperemia
petechiae
ecchymosis
hematoma
exudate
transudate
effusion
serous effusion
fibrinous exudate
purulent exudate|suppuration
abscess formation
chronic active inflammation
pagetoid spread|pagetoid scatter|pagetoid
subnuclear vacuoles|subnuclear vacuolation
supranuclear vacuoles
hypercellular|hypercellularity
hypocellular|hypocellularity
acinar atrophy|atrophy of acini
granulomatous reaction
foreign body reaction
healing|tissue repair
scar formation
keloid formation
neovascularization
collagen deposition
elastosis|solar elastosis
metaplastic change
dysplastic change
malignant transformation
tumor invasion
tumor thrombus
vascular invasion
lymphatic invasion
distant metastasis
lymph node metastasis
micrometastasis
isolated tumor cells
tumor stroma
tumor microenvironment
desmoplastic
infiltrative border
pushing border
encapsulated
circumscribed|well circumscribed
ill defined|poorly circumscribed
multifocal
unifocal
bilateral
unilateral
polypoid
sessile
pedunculated
exophytic
endophytic
ulcerated
fungating
infiltrating
diffuse
nodular
cystic
solid
papillary
follicular
glandular
tubular
villous
serrated
cribriform pattern
micropapillary
small round blue cell tumor
large cells
small cells
foamy macrophages
pigment-laden macrophages
hemosiderin-laden macrophages
apoptotic bodies
high mitotic rate
low mitotic rate
high grade|high-grade
low grade|low-grade
intermediate grade
grade 1
grade 2
grade 3
differentiation
undifferentiated
dedifferentiated
anaplastic
mucin production
keratin production
architecture
cytology finding|cytologic features
nuclear features
nuclear size
nuclear contour
nuclear chromatin
nucleocytoplasmic ratio|N:C ratio
cytoplasmic vacuoles
cytoplasmic granules
eosinophilic cytoplasm
basophilic cytoplasm
amphophilic cytoplasm
abundant cytoplasm
scant cytoplasm
hyaline globules
eosinophilic globules
crystals
calcium oxalate crystals
urate crystals|monosodium urate crystals
cholesterol crystals
asbestos bodies
birefringent material
polarizable material
foreign material
suture material
tattoo pigment
formalin pigment|acid hematin
mucus
mucus plug
keratin
keratin flakes
squames
fibrin thrombus
platelet thrombus
red blood cells|RBCs
white blood cells|WBCs
inflammatory cells
acute inflammatory cells
chronic inflammatory cells
lymphoplasmacytic cells
"""

EXTRA_GROUPS: list[tuple[str, str]] = [
    (T_PROTEIN, _MARKERS),
    (T_REAGENT, _STAINS),
    (T_LABPROC, _TECHNIQUES),
    (T_ORGAN, _ANATOMY),
    (T_CELL, _CELLS),
    (T_FINDING, _DESCRIPTORS),
    (T_DISEASE, _DISEASES),
    (T_NEOPLASM, _NEOPLASMS),
    (T_FINDING, _FINDINGS),
    (T_BACTERIUM, _MICROBES),
]

# A few of the lines above are not of their group's type.
EXTRA_TYPE_OF: dict[str, str] = {
    "Candida esophagitis": T_DISEASE,
    "foveolar epithelium": T_TISSUE,
    "acinar atrophy": T_PATHFN,
    "fungal hyphae": T_FUNGUS,
    "yeast": T_FUNGUS,
    "pseudohyphae": T_FUNGUS,
    "spherules": T_FUNGUS,
    "Mucor": T_FUNGUS,
    "Coccidioides": T_FUNGUS,
    "Blastomyces": T_FUNGUS,
    "Sporothrix": T_FUNGUS,
    "Toxoplasma gondii": T_EUKARYOTE,
    "Plasmodium": T_EUKARYOTE,
    "Leishmania": T_EUKARYOTE,
    "Trypanosoma cruzi": T_EUKARYOTE,
    "Strongyloides stercoralis": T_EUKARYOTE,
    "Echinococcus": T_EUKARYOTE,
    "Cryptosporidium": T_EUKARYOTE,
    "Trichomonas vaginalis": T_EUKARYOTE,
    "hepatitis B virus": T_VIRUS,
    "hepatitis C virus": T_VIRUS,
    "human immunodeficiency virus": T_VIRUS,
    "varicella zoster virus": T_VIRUS,
    "JC virus": T_VIRUS,
    "BK virus": T_VIRUS,
    "adenovirus": T_VIRUS,
    "molluscum contagiosum virus": T_VIRUS,
    "SARS-CoV-2": T_VIRUS,
    "hemorrhoids": T_ACQ_ABN,
    "scar": T_ACQ_ABN,
    "ulcer": T_ACQ_ABN,
    "biliary atresia": T_CONGENITAL,
    "cryptorchidism": T_CONGENITAL,
    "polycystic kidney disease": T_CONGENITAL,
    "Hirschsprung disease": T_CONGENITAL,
    "cystic fibrosis": T_CONGENITAL,
    "hair follicle": T_ANAT,
    "tissue section": T_ANAT,
    "soft tissue": T_TISSUE,
    "hyaline cartilage": T_TISSUE,
    "elastic cartilage": T_TISSUE,
    "fibrocartilage": T_TISSUE,
    "articular cartilage": T_TISSUE,
    "lamellar bone": T_TISSUE,
    "woven bone": T_TISSUE,
    "cortical bone": T_TISSUE,
    "bone trabecula": T_TISSUE,
    "myocardium": T_TISSUE,
    "urothelium": T_TISSUE,
    "mesangium": T_TISSUE,
    "synovium": T_TISSUE,
    "myelin sheath": T_CELLCOMP,
    "axon": T_CELLCOMP,
    "dendrite": T_CELLCOMP,
    "sarcomere": T_CELLCOMP,
    "bile canaliculus": T_CELLCOMP,
    "cerebrospinal fluid": T_SUBST,
    "mucus": T_SUBST,
    "keratin": T_SUBST,
    "hyaline globules": T_SUBST,
    "space of Disse": T_SPATIAL,
    "zone 1": T_SPATIAL,
    "zone 3": T_SPATIAL,
    "transformation zone": T_SPATIAL,
    "dermoepidermal junction": T_SPATIAL,
}


def organ_tumor_lines() -> list[tuple[str, str]]:
    """``(tui, line)`` for every site-specific tumour of ``ORGAN_TUMORS``."""
    out: list[tuple[str, str]] = []
    for organ, (adjective, tumors) in ORGAN_TUMORS.items():
        for tumor in tumors:
            name = f"{adjective} {tumor}"
            aliases = [f"{tumor} of the {organ}"]
            if adjective != organ:
                aliases.append(f"{organ} {tumor}")
            out.append((T_NEOPLASM, "|".join([name, *aliases])))
    return out

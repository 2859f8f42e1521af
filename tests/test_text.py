"""Text stage, knowledge base and linker: real KB, real scispacy linker, real ASR output.

Transcripts are built from known sentences (each word 0.3 s, 1.5 s between sentences) so
the expected corrections, concepts and time spans are exact; one slow test runs the whole
way from espeak-ng narration through tiny.en.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import media
from tests.support.text import KB_PATH, transcript_of
from workers.knowledge import build_kb
from workers.knowledge.lexicon import is_english_word
from workers.knowledge.linker import KnowledgeBaseLinker, build_linker_paths, get_linker
from workers.knowledge.phonetic import phonetic_key, similarity_over
from workers.stages.text import TextOptions, process
from workers.text.keywords import rake_phrases, rake_scores
from workers.text.plurals import pluralize
from workers.types import Segment, Transcript, Word

KB = [json.loads(line) for line in KB_PATH.read_text(encoding="utf-8").splitlines()]
ID_OF = {e["canonical_name"]: e["concept_id"] for e in KB}

# Garbles tiny.en actually wrote for espeak-ng narration (seen in test_asr runs).
GARBLES = [
    (
        "This section is stained with hammer toxicin and deacin.",
        "This section is stained with hematoxylin and eosin.",
        "hematoxylin and eosin",
    ),
    (
        "Here you can see the laminopropry of the colon.",
        "Here you can see the lamina propria of the colon.",
        "lamina propria",
    ),
    (
        "This is a Hematosal Euler carcinoma with a trabecular pattern.",
        "This is a Hepatocellular carcinoma with a trabecular pattern.",
        "hepatocellular carcinoma",
    ),
    (
        "The hepatocytes show stethosis around the central vein.",
        "The hepatocytes show steatosis around the central vein.",
        "steatosis",
    ),
    ("Hematocytes are arranged in plates.", "Hepatocytes are arranged in plates.", "hepatocyte"),
    ("The portal tract holds a milduct.", "The portal tract holds a bile duct.", "bile duct"),
    (
        "Next to it a hematoxillin stained nucleus.",
        "Next to it a hematoxylin stained nucleus.",
        "hematoxylin",
    ),
]
CONTROL = [
    "The weather today is sunny and warm, so we went to the beach.",
    "My brother bought a new car last week and drove it to work.",
    "Please remember to submit your homework before Friday afternoon.",
    "The committee will discuss the budget at the next meeting.",
    "Microsoft released a new version of the software yesterday.",
    "She painted the kitchen walls a pale shade of green.",
    "Our train was delayed because of heavy snow in the mountains.",
    "He plays the guitar in a small band on weekends.",
    "The museum opens at nine and closes early on Sundays.",
    "They planted tomatoes, carrots and onions in the garden.",
    "Thank you all for coming, and see you next week.",
    "I think the movie was too long but the music was beautiful.",
]


# --- knowledge base ---------------------------------------------------------------------


def test_kb_is_scispacy_jsonl_with_enough_concepts() -> None:
    from scispacy.linking_utils import KnowledgeBase

    assert len(KB) >= 1500
    ids = [e["concept_id"] for e in KB]
    assert len(set(ids)) == len(ids)
    for entity in KB:
        assert set(entity) == {"concept_id", "canonical_name", "aliases", "types", "definition"}
        assert entity["types"] and all(t.startswith("T") and len(t) == 4 for t in entity["types"])
        assert entity["concept_id"].startswith(("C", "QC:"))
    kb = KnowledgeBase(str(KB_PATH))
    assert kb.cui_to_entity["C0023884"].canonical_name == "liver"
    assert "QC:" in ID_OF["lamina propria"]
    types = {t for e in KB for t in e["types"]}
    assert {"T017", "T023", "T024", "T025", "T047", "T059", "T130", "T191"} <= types


def test_kb_file_is_what_build_kb_writes(tmp_path: Path) -> None:
    out = tmp_path / "kb.jsonl"
    assert build_kb.main(["--out", str(out)]) == 0
    assert out.read_bytes() == KB_PATH.read_bytes()


def test_kb_term_files_and_concepts_are_checked(tmp_path: Path, monkeypatch) -> None:
    terms = tmp_path / "terms"
    terms.mkdir()
    (terms / "10-T025-cells.txt").write_text("# a comment\nhepatocyte|liver cell  # main\n\n")
    (terms / "9-T023-organs.txt").write_text("liver|hepatic\nhepatic|hepar\n")
    assert build_kb.read_terms(terms) == [
        ("T023", ["liver", "hepatic"]),
        ("T023", ["hepatic", "hepar"]),
        ("T025", ["hepatocyte", "liver cell"]),
    ]
    (terms / "11-T999-unknown.txt").write_text("liver\n")
    with pytest.raises(ValueError, match="11-T999-unknown.txt"):
        build_kb.read_terms(terms)
    concepts = tmp_path / "concepts.json"
    concepts.write_text('{"livre": {"cui": "C0023884"}}')
    monkeypatch.setattr(build_kb, "CONCEPTS_PATH", concepts)
    with pytest.raises(ValueError, match="livre"):
        build_kb.build_entities()


# --- linker -----------------------------------------------------------------------------


def test_linker_files_are_cached_by_kb_content(tmp_path: Path) -> None:
    kb = tmp_path / "kb.jsonl"
    kb.write_bytes(KB_PATH.read_bytes())
    paths = build_linker_paths(kb, tmp_path / "cache")
    assert paths.is_locally_cached()
    folder = Path(paths.ann_index).parent
    mtime = Path(paths.ann_index).stat().st_mtime_ns
    assert build_linker_paths(kb, tmp_path / "cache") == paths
    assert Path(paths.ann_index).stat().st_mtime_ns == mtime
    with open(kb, "a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "concept_id": "QC:999999",
                    "canonical_name": "test body",
                    "aliases": [],
                    "types": ["T026"],
                    "definition": None,
                }
            )
            + "\n"
        )
    edited = build_linker_paths(kb, tmp_path / "cache")
    assert Path(edited.ann_index).parent != folder
    linker = KnowledgeBaseLinker(kb, cache_dir=tmp_path / "cache")
    assert [c.concept_id for c in linker.link(["test body"])] == ["QC:999999"]


def test_linker_links_garbled_and_exact_mentions(text_options: TextOptions) -> None:
    linker = get_linker(text_options.kb_path, text_options.kb_cache_dir)
    assert get_linker(text_options.kb_path, text_options.kb_cache_dir) is linker
    concepts = linker.link(["Hematocytes", "goblet cells", "liver", "the weather"])
    by_mention = {c.mention: c for c in concepts}
    assert by_mention["Hematocytes"].concept_id == ID_OF["hepatocyte"]
    assert 0.6 <= by_mention["Hematocytes"].score < 0.9
    assert by_mention["goblet cells"].concept_id == ID_OF["goblet cell"]
    assert by_mention["goblet cells"].score == pytest.approx(1.0)
    assert by_mention["liver"].concept_id == "C0023884"
    assert by_mention["liver"].types == ["T023"]
    assert "the weather" not in by_mention


def test_english_lexicon() -> None:
    for word in ["the", "tissue", "painted", "tomatoes", "delayed", "beautiful", "gland"]:
        assert is_english_word(word), word
    for word in ["toxicin", "deacin", "laminopropry", "stethosis", "milduct", "hematosal"]:
        assert not is_english_word(word), word


# --- correction -------------------------------------------------------------------------


@pytest.mark.parametrize(("noisy", "fixed", "term"), GARBLES)
def test_known_asr_garbles_are_corrected(text_options, noisy: str, fixed: str, term: str) -> None:
    result = process(transcript_of([noisy]), text_options)
    [sentence] = result.sentences
    assert sentence.noisy_text == noisy
    assert sentence.corrected_text == fixed
    [correction] = sentence.corrections
    assert correction.concept_id == ID_OF[term]
    assert 0.78 <= correction.score <= 1.0
    assert ID_OF[term] in {c.concept_id for c in sentence.concepts}
    assert sentence.is_medical


def test_ordinary_english_is_left_alone(text_options: TextOptions) -> None:
    result = process(transcript_of(CONTROL), text_options)
    assert len(result.sentences) == len(CONTROL)
    for sentence, original in zip(result.sentences, CONTROL, strict=True):
        assert sentence.corrected_text == original
        assert sentence.corrections == []
        assert sentence.concepts == [], sentence.concepts
        assert not sentence.is_medical
    assert result.stats["corrections"] == 0
    assert result.stats["medical_sentences"] == 0


def test_correct_medical_text_is_left_alone(text_options: TextOptions) -> None:
    text = (
        "The lamina propria contains plasma cells, lymphocytes and eosinophils, and the "
        "crypts are lined by goblet cells."
    )
    [sentence] = process(transcript_of([text]), text_options).sentences
    assert sentence.corrected_text == text
    assert sentence.corrections == []
    ids = {c.concept_id for c in sentence.concepts}
    assert {ID_OF["lamina propria"], ID_OF["plasma cell"], ID_OF["goblet cell"]} <= ids


def _heard(text: str, probabilities: dict[str, float]) -> Transcript:
    """One sentence as the recognizer heard it, with its doubt on some words."""
    words = [
        Word(" " + token, 0.35 * n, 0.35 * n + 0.3, probabilities.get(token, 0.9))
        for n, token in enumerate(text.split())
    ]
    return Transcript("en", 1.0, words[-1].end, [Segment(0, 0.0, words[-1].end, text, words)])


def test_doubted_kb_words_become_the_kb_term_that_keeps_one_of_them(
    text_options: TextOptions,
) -> None:
    text = "In this area the dysplastic stroma holds a few lymphocytes."
    # tiny.en on the demo: "dysplastic" 0.55, "stroma" 0.04 for "desmoplastic stroma".
    [doubted] = process(_heard(text, {"dysplastic": 0.55, "stroma": 0.04}), text_options).sentences
    assert doubted.corrected_text == text.replace("dysplastic", "desmoplastic")
    assert [c.concept_id for c in doubted.corrections] == [ID_OF["desmoplasia"]]
    # Heard with confidence, KB words are meant as said.
    [sure] = process(_heard(text, {}), text_options).sentences
    assert sure.corrected_text == text and sure.corrections == []


def test_a_kept_word_in_front_lends_its_sounds_but_is_no_match(text_options: TextOptions) -> None:
    # tiny.en on lecture4: "In the intramary" ("In the antrum there"): with "the" counted
    # as matched on both sides it scored 0.785 as "the Antoni B area".
    text = "In the intramary intestinal metaplasia next to a lymphoid follicle."
    [kept] = process(_heard(text, {"intramary": 0.45}), text_options).sentences
    assert kept.corrected_text == text and kept.corrections == []
    # The kept word still lends its last sound: the "ch" of "each" is the g of glomerulus.
    text = "The kidney shows each lamina-yolus with a thick basement membrane."
    [lent] = process(_heard(text, {"lamina-yolus": 0.3}), text_options).sentences
    assert lent.corrected_text == text.replace("lamina-yolus", "glomerulus")
    assert similarity_over("the abc", "the abd", 3) == pytest.approx(2 / 3)
    assert similarity_over("abc", "xyz", 2) == 0.0


def test_an_open_compound_of_a_term_is_the_term_said_as_it_is(text_options: TextOptions) -> None:
    # Whisper writes prefixed words open ("pseudo -palisading"); the window with the word
    # before it ("shows pseudo-palisading necrosis") was replaced by the closed term.
    text = "The glioblastoma shows pseudo -palisading necrosis."
    [sentence] = process(_heard(text, {}), text_options).sentences
    assert sentence.corrected_text == "The glioblastoma shows pseudo-palisading necrosis."
    assert sentence.corrections == []
    assert ID_OF["pseudopalisading necrosis"] in {c.concept_id for c in sentence.concepts}


def test_kb_lists_open_compounds_of_prefixed_words() -> None:
    words = {"palisading", "necrosis", "nuclear"}
    assert build_kb.hyphenated_variants("pseudopalisading necrosis", words) == [
        "pseudo-palisading necrosis"
    ]
    assert build_kb.hyphenated_variants("subnuclear", words) == ["sub-nuclear"]
    assert build_kb.hyphenated_variants("interstitial", words) == []  # "stitial": no word
    aliases = {e["canonical_name"]: e["aliases"] for e in KB}
    assert "sub-nuclear vacuoles" in aliases["subnuclear vacuoles"]


@pytest.mark.parametrize(
    ("noisy", "fixed"),
    [
        # tiny.en on lecture4; before these terms were in the KB the first became
        # "lymphoblast", the second "endometrial carcinoma".
        ("The mass has catered lipoblast and a delicate network.", None),
        (
            "The endometrial cure adage shows secretory endometrium.",
            "The endometrial curettage shows secretory endometrium.",
        ),
        (
            "The endometrium has some nuclear macules and pyral arterials.",
            "The endometrium has subnuclear vacuoles and spiral arterioles.",
        ),
        ("The melanoma shows pagatoid spread.", "The melanoma shows pagetoid spread."),
    ],
)
def test_kb_covers_gynaecological_bone_and_soft_tissue_terms(
    text_options: TextOptions, noisy: str, fixed: str | None
) -> None:
    [sentence] = process(_heard(noisy, {"some": 0.19}), text_options).sentences
    assert sentence.corrected_text == (fixed or noisy)


def test_plurals_are_made_for_count_nouns_at_their_head() -> None:
    assert pluralize("glomerulus") == "glomeruli"
    assert pluralize("lesion") == "lesions"  # not "lesia"
    assert pluralize("ganglion") == "ganglia"
    assert pluralize("lumen") == "lumina"
    assert pluralize("sinus") == "sinuses"
    assert pluralize("crypt of Lieberkuhn") == "crypts of Lieberkuhn"
    assert pluralize("carcinoma in situ") == "carcinomas in situ"
    for mass_or_adjective in ["atypia", "pleomorphism", "cribriform", "cardiac", "nuclei"]:
        assert pluralize(mass_or_adjective) == mass_or_adjective


def test_phonetic_key_sounds() -> None:
    assert phonetic_key("you know") == phonetic_key("you now")  # a silent k, within a word
    assert phonetic_key("thick") == phonetic_key("fick")  # th and f (Miller & Nicely)
    assert phonetic_key("at home") == phonetic_key("a tome")  # no "th" across words


# --- sentences, keywords, ROI -----------------------------------------------------------


def test_sentences_have_word_time_spans_and_split_on_pauses(text_options: TextOptions) -> None:
    words = [
        Word(" The", 0.0, 0.2, 0.9),
        Word(" nuclei", 0.3, 0.7, 0.9),
        Word(" are", 0.8, 0.9, 0.9),
        Word(" hyperchromatic", 1.0, 1.8, 0.9),
        # 2 s pause, no punctuation: a new sentence
        Word(" mitoses", 3.8, 4.3, 0.9),
        Word(" are", 4.4, 4.5, 0.9),
        Word(" frequent.", 4.6, 5.1, 0.9),
        Word(" Here", 5.3, 5.6, 0.9),
        Word(" is", 5.7, 5.8, 0.9),
        Word(" necrosis.", 5.9, 6.5, 0.9),
    ]
    transcript = Transcript("en", 1.0, 7.0, [Segment(0, 0.0, 6.5, "", words)])
    result = process(transcript, text_options)
    spans = [(s.start_s, s.end_s, s.corrected_text) for s in result.sentences]
    assert spans == [
        (0.0, 1.8, "The nuclei are hyperchromatic"),
        (3.8, 5.1, "mitoses are frequent."),
        (5.3, 6.5, "Here is necrosis."),
    ]
    assert [s.is_roi for s in result.sentences] == [False, False, True]
    assert result.sentences[2].concepts[0].concept_id == "C0027540"  # necrosis
    assert result.stats["sentences"] == 3 and result.stats["roi_sentences"] == 1


def test_roi_cues(text_options: TextOptions) -> None:
    texts = [
        "In this area the glands are crowded.",
        "The arrow points to a mitotic figure.",
        "At higher power the nuclei are vesicular.",
        "You can see a granuloma.",
        "Adenocarcinoma is a malignant tumor.",
    ]
    result = process(transcript_of(texts), text_options)
    assert [s.is_roi for s in result.sentences] == [True, True, True, True, False]
    assert all(s.is_medical for s in result.sentences)


def test_rake_keywords() -> None:
    stop = frozenset({"the", "of", "and", "with", "is", "a", "in"})
    sentence = "The lamina propria of the colon is expanded, with plasma cells and lamina"
    tokens = sentence.split(" ")
    phrases = rake_phrases(tokens, stop)
    assert phrases == ["lamina propria", "colon", "expanded", "plasma cells", "lamina"]
    scores = rake_scores([phrases])
    # RAKE: deg/freq; "lamina" has degree 3 (2 + 1) and frequency 2, "propria" 2/1.
    assert scores["lamina propria"] == pytest.approx(1.5 + 2.0)
    assert scores["plasma cells"] == pytest.approx(4.0)
    assert scores["colon"] == pytest.approx(1.0)


def test_keywords_are_per_sentence_and_ranked(text_options: TextOptions) -> None:
    [sentence] = process(
        transcript_of(["The invasive adenocarcinoma shows desmoplastic stroma and necrosis."]),
        text_options,
    ).sentences
    # RAKE favours long phrases; the two single words tie at 1.0 and sort by name.
    assert sentence.keywords == [
        "invasive adenocarcinoma shows desmoplastic",
        "necrosis",
        "stroma",
    ]


def test_options_from_settings() -> None:
    from app.settings import Settings

    settings = Settings(link_threshold=0.7)
    options = TextOptions.from_settings(settings)
    assert options.link_threshold == 0.7
    assert options.kb_path == str(settings.resolved_kb_path)
    assert options.kb_cache_dir == str(settings.var_dir / "kb-cache")


# --- end to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_real_asr_output_is_cleaned(tmp_path: Path, text_options: TextOptions) -> None:
    from workers.stages.asr import AsrOptions, transcribe

    lecture = (
        "This section is stained with hematoxylin and eosin. Here you can see the lamina "
        "propria of the colon, with crypts and goblet cells. At higher power, the "
        "hepatocytes show steatosis near the bile duct."
    )
    path = media.narrated_video(tmp_path, lecture, name="lecture.mp4")
    # Without the domain prompt tiny.en garbles the terms, which is what this stage is for.
    transcript = transcribe(path, AsrOptions(initial_prompt=""))
    result = process(transcript, text_options)
    corrected = " ".join(s.corrected_text for s in result.sentences).lower()
    # tiny.en writes e.g. "hematoxillin", "hematocytes", "stethosis", "milduct" here; all
    # ordinary-English garbles ("the lamb in a property" for "the lamina propria") stay.
    for term in ["hematoxylin and eosin", "goblet cells", "hepatocytes", "steatosis", "bile duct"]:
        assert term in corrected, corrected
    assert result.stats["corrections"] >= 1
    assert result.stats["medical_sentences"] >= 2
    for sentence in result.sentences:
        assert 0.0 <= sentence.start_s <= sentence.end_s <= transcript.duration_s
        for concept in sentence.concepts:
            assert concept.concept_id in set(ID_OF.values())


def test_noun_phrases_without_a_parser() -> None:
    from workers.text.keywords import noun_phrases

    stop = frozenset({"the", "of", "and", "in", "with", "is", "are", "we", "see", "here"})
    said = "Here we see the markedly atypical glands of the colon, with prominent nucleoli."
    tokens = said.split()
    assert noun_phrases(tokens, stop) == ["atypical glands", "colon", "prominent nucleoli"]


def test_concepts_come_from_every_noun_phrase_not_only_top_keywords(
    text_options: TextOptions,
) -> None:
    """Linking takes the sentence's KB aliases and noun phrases, so a concept in a phrase
    that RAKE ranks low is still found."""
    import dataclasses

    narrow = dataclasses.replace(text_options, max_keywords=1)
    sentence = (
        "Big bright purple round shapes fill the whole upper left corner, beside a small bile duct."
    )
    result = process(transcript_of([sentence]), narrow)
    (only,) = result.sentences
    assert len(only.keywords) == 1 and "bile duct" not in only.keywords
    assert "bile duct" in {c.name.lower() for c in only.concepts}

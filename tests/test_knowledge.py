"""The knowledge-base reader the pages use (app/knowledge.py): concepts and their semantic
types from a scispacy-style JSONL file (bad lines skipped), lookups by id, and highlighting
of their aliases in text."""

from __future__ import annotations

from app import knowledge


def test_knowledge_base_reader_and_highlight(settings, tmp_path, monkeypatch):
    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        '{"concept_id": "QC:1", "canonical_name": "hepatocyte", "aliases": ["hepatocytes"],'
        ' "types": ["T025"]}\n'
        "not json\n"
        '{"concept_id": "QC:2", "canonical_name": "bile duct", "aliases": ["bile ducts"],'
        ' "types": ["T023", "T999"]}\n'
        "\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(settings, "kb_path", str(kb))
    monkeypatch.setattr("app.knowledge.get_settings", lambda: settings)
    assert set(knowledge.concepts()) == {"QC:1", "QC:2"}
    hepatocyte = knowledge.concepts()["QC:1"]
    assert hepatocyte.name == "hepatocyte" and hepatocyte.aliases == ("hepatocytes",)
    assert hepatocyte.type_names == ["Cell"]
    assert hepatocyte.label == "hepatocyte (Cell) · QC:1"
    found = knowledge.concepts_of(["QC:1", {"cui": "QC:2"}, "QC:1", "QC:missing", 7])
    assert [c.concept_id for c in found] == ["QC:1", "QC:2", "QC:missing"]
    assert found[1].type_names == ["Body Part, Organ, or Organ Component", "T999"]
    assert found[-1].name == "QC:missing" and found[-1].types == ()
    segments = knowledge.highlight("Hepatocytes around the bile ducts; the duct", found)
    marked = [(s.text, s.concept.concept_id) for s in segments if s.concept]
    # Longest alias wins, case-insensitive, whole words only ("duct" alone is no alias).
    assert marked == [("Hepatocytes", "QC:1"), ("bile ducts", "QC:2")]
    assert "".join(s.text for s in segments) == "Hepatocytes around the bile ducts; the duct"
    assert knowledge.highlight("", found) == []
    assert knowledge.highlight("the hepatocytes", []) == [knowledge.Segment("the hepatocytes")]


def test_the_bundled_knowledge_base_is_read(settings):
    hepatocyte = knowledge.concepts()["QC:239475"]
    assert hepatocyte.name == "hepatocyte" and "T025" in hepatocyte.types

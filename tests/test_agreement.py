"""Agreement statistics against textbook examples with published answers."""

from __future__ import annotations

import random

import pytest

from app.services.agreement import (
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    levenshtein,
    normalized_edit_distance,
)


def test_cohen_kappa_textbook_example():
    # Wikipedia "Cohen's kappa", worked example: 50 grant proposals, two readers;
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_edges():
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    # Everyone said the same thing: chance agreement is 1, kappa is undefined.
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None
    assert cohen_kappa([], []) is None
    # Systematic disagreement on a balanced set: -1.
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as worked in Wikipedia "Fleiss' kappa": 10 subjects, 14 raters,
    # 5 categories; P_bar = 0.378, P_e = 0.213, kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-4)
    with pytest.raises(ValueError):
        fleiss_kappa([[1, 1], [3, 0]])


def test_fleiss_equals_cohen_form_for_perfect_agreement():
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    assert fleiss_kappa([[3, 0], [3, 0]]) is None


def test_krippendorff_alpha_nominal_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C:
    # 4 observers, 12 units, missing values; nominal alpha = 0.743.
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    units = list(zip(a, b, c, d, strict=True))
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_matches_fleiss_closely_on_complete_data():
    # With complete data and many items, alpha and Fleiss' kappa nearly coincide
    # (alpha corrects for sample size): check they agree to 2 decimals.
    rng = random.Random(7)
    units = []
    for _ in range(400):
        truth = rng.random() < 0.6
        units.append(
            ["a" if (truth if rng.random() < 0.8 else not truth) else "r" for _ in range(3)]
        )
    table = [[u.count("a"), u.count("r")] for u in units]
    assert krippendorff_alpha_nominal(units) == pytest.approx(fleiss_kappa(table), abs=0.01)


def test_levenshtein_textbook_examples():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert levenshtein("", "abc") == 3
    assert levenshtein("same", "same") == 0
    assert levenshtein("intention", "execution") == 5
    assert levenshtein("héma", "hema") == 1
    assert normalized_edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
    assert normalized_edit_distance("", "") == 0.0


def test_levenshtein_matches_a_plain_dynamic_programme():
    def slow(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    rng = random.Random(3)
    for _ in range(300):
        a = "".join(rng.choice("acgt") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("acgt") for _ in range(rng.randint(0, 12)))
        assert levenshtein(a, b) == slow(a, b), (a, b)

// SQuAD v2's scores against cases computed by hand (each with the official script's result).
#include <catch2/catch.hpp>

#include "src/qa_metrics.h"

using namespace rkv;

TEST_CASE("answers are normalized as SQuAD's script does", "[qa]") {
    CHECK(normalize_answer("The  Quick, brown-fox!") == "quick brownfox");  // punctuation joins words
    CHECK(normalize_answer("an apple a day") == "apple day");
    CHECK(normalize_answer("theatre of the absurd") == "theatre of absurd");  // whole words only
    CHECK(normalize_answer("A.B.C") == "abc");
    CHECK(normalize_answer("  \t\n") == "");
    CHECK(normalize_answer("the") == "");
    CHECK(normalize_answer("Don't stop") == "dont stop");
    CHECK(normalize_answer("THE\tEnd\n") == "end");
}

TEST_CASE("exact match and token F1", "[qa]") {
    CHECK(exact_match("The Red House.", "red house") == 1.0);
    CHECK(exact_match("red house near", "red house") == 0.0);
    // gold red red house, prediction red house near: 2 common, precision = recall = 2/3.
    CHECK(token_f1("red house near", "the red red house") == Approx(2.0 / 3.0).epsilon(1e-15));
    // one word of four: precision 1, recall 1/4, F1 2 * 1/4 / (5/4) = 0.4.
    CHECK(token_f1("tesim", "kavo lives in tesim") == Approx(0.4).epsilon(1e-15));
    CHECK(token_f1("c b a", "a b c") == 1.0);                               // a bag of words: order does not count
    CHECK(token_f1("x x y y", "x y") == Approx(2.0 / 3.0).epsilon(1e-15));  // multiplicity counts
    CHECK(token_f1("blue", "red") == 0.0);
    CHECK(token_f1("", "red") == 0.0);
    CHECK(token_f1("the", "") == 1.0);  // both empty after normalization
}

TEST_CASE("an example scores the best over its gold answers; unanswerable ones only an empty prediction", "[qa]") {
    const QaScore several = score_answer("The old Tesim.", {"kavo", "old tesim", "tesim town"});
    CHECK(several.em == 1.0);
    CHECK(several.f1 == 1.0);
    // F1 from one answer, EM from none: tesim town gives 2 * 1/2 * 1/2 / 1 = 0.5, the others less.
    const QaScore partial = score_answer("tesim city", {"kavo", "tesim town", "a big tesim town hall"});
    CHECK(partial.em == 0.0);
    CHECK(partial.f1 == Approx(0.5).epsilon(1e-15));
    CHECK(score_answer("", {}).em == 1.0);
    CHECK(score_answer(" . the ", {}).f1 == 1.0);  // normalizes to nothing: an empty answer
    CHECK(score_answer("7351", {}).em == 0.0);
    CHECK(score_answer("7351", {}).f1 == 0.0);
    // Gold answers that normalize to nothing make the question unanswerable, as in the script.
    CHECK(score_answer("", {"the", "."}).em == 1.0);
    CHECK(score_answer("red", {"the"}).f1 == 0.0);
    CHECK(score_answer("", {"red"}).f1 == 0.0);
}

// Scores of extractive question answering, as SQuAD v2's official evaluation script defines
// them: answers are compared after normalization (lower case, punctuation removed, the articles
// a/an/the removed, whitespace collapsed); exact match is 1 when the normalized strings are
// equal, F1 is the harmonic mean of precision and recall over the normalized words counted with
// multiplicity; an example scores the best over its gold answers, and an unanswerable one (no
// gold answer) scores 1 only for an empty prediction. ASCII letters are lower-cased and ASCII
// whitespace splits words; other bytes are kept as they are.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rkv {

std::string normalize_answer(std::string_view s);
double exact_match(std::string_view prediction, std::string_view gold);  // 0 or 1
double token_f1(std::string_view prediction, std::string_view gold);     // in [0, 1]

struct QaScore {
    double em = 0, f1 = 0;
};
// The best over the gold answers; no gold answer (or only ones that normalize to nothing):
// 1 for an empty prediction, else 0.
QaScore score_answer(std::string_view prediction, const std::vector<std::string>& answers);

}  // namespace rkv

#include "src/qa_metrics.h"

#include <algorithm>
#include <map>

namespace rkv {

namespace {

// Python's str.split(): words between runs of whitespace.
std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    std::string word;
    for (char c : s) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            if (!word.empty()) out.push_back(std::move(word));
            word.clear();
        } else {
            word += c;
        }
    }
    if (!word.empty()) out.push_back(std::move(word));
    return out;
}

// string.punctuation of Python, which the official script removes.
bool is_punctuation(char c) {
    return std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").find(c) != std::string_view::npos;
}

}  // namespace

std::string normalize_answer(std::string_view s) {
    // Lower case, then no punctuation, then no articles (whole words), then single spaces:
    // the script's order. Bytes outside ASCII are kept as they are.
    std::string text;
    for (char c : s)
        if (!is_punctuation(c)) text += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    std::string out;
    for (const std::string& w : words(text)) {
        if (w == "a" || w == "an" || w == "the") continue;
        if (!out.empty()) out += ' ';
        out += w;
    }
    return out;
}

double exact_match(std::string_view prediction, std::string_view gold) {
    return normalize_answer(prediction) == normalize_answer(gold) ? 1.0 : 0.0;
}

double token_f1(std::string_view prediction, std::string_view gold) {
    const std::vector<std::string> p = words(normalize_answer(prediction)), g = words(normalize_answer(gold));
    // The script: if either is empty, F1 is 1 when both are, else 0.
    if (p.empty() || g.empty()) return p.empty() && g.empty() ? 1.0 : 0.0;
    std::map<std::string, int> counts;
    for (const std::string& w : g) counts[w]++;
    int common = 0;
    for (const std::string& w : p)
        if (counts[w]-- > 0) common++;
    if (common == 0) return 0.0;
    const double precision = double(common) / double(p.size()), recall = double(common) / double(g.size());
    return 2 * precision * recall / (precision + recall);
}

QaScore score_answer(std::string_view prediction, const std::vector<std::string>& answers) {
    // As the script: gold answers that normalize to nothing do not count, and without any
    // the question is unanswerable, the gold answer the empty string.
    QaScore best;
    bool answerable = false;
    for (const std::string& gold : answers) {
        if (normalize_answer(gold).empty()) continue;
        answerable = true;
        best.em = std::max(best.em, exact_match(prediction, gold));
        best.f1 = std::max(best.f1, token_f1(prediction, gold));
    }
    if (!answerable) return {exact_match(prediction, ""), token_f1(prediction, "")};
    return best;
}

}  // namespace rkv

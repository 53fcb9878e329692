// One extractive question-answering example: a context, a question about it and the gold
// answers, each a span of the context; none when the context does not answer it (SQuAD v2's
// unanswerable questions).
#pragma once

#include <string>
#include <vector>

namespace rkv {

struct QaExample {
    std::string context, question;
    std::vector<std::string> answers;
};

}  // namespace rkv

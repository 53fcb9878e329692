// Question-answering data as eval_rkv reads and writes it: JSON Lines of
//   {"context": "...", "question": "...", "answers": ["...", ...]}   (answers [] : unanswerable)
// and the prompt and completion a model sees for an example: the prompt from a template with
// {context} and {question} in it, the completion " <first answer>\n" (just "\n" when
// unanswerable), so a model answers after the prompt and ends its answer with a newline.
#pragma once

#include <string>
#include <vector>

#include "data/qa_example.h"

namespace rkv {

// As written on a command line: parse_qa_template reads its \n as newlines.
inline constexpr const char* kDefaultQaTemplate = R"({context}\nQuestion: {question}\nAnswer:)";

// Throws std::runtime_error "path:line: problem" for a line that is not such an object (an
// empty line included), a missing or mistyped field, or a field it does not know ("id" and
// "title" are allowed and not used); an empty file is an error too.
std::vector<QaExample> read_qa_jsonl(const std::string& path);

// The template with \n and \t read as newline and tab. Throws std::invalid_argument unless it
// holds {question}, or when it holds a {name} other than {context} and {question}.
std::string parse_qa_template(const std::string& tmpl);
std::string qa_prompt(const std::string& tmpl, const QaExample& ex);  // tmpl as parse_qa_template returns
std::string qa_completion(const QaExample& ex);

// The examples as JSON Lines, as read_qa_jsonl reads them.
std::string qa_jsonl(const std::vector<QaExample>& examples);
// {"prompt": ..., "completion": ...} lines, for fine-tuning with no loss on the prompt.
std::string prompt_completion_jsonl(const std::vector<QaExample>& examples, const std::string& tmpl);

// The built-in QA task (data/corpus.h) in dir: qa_train.jsonl and qa_test.jsonl, and their
// prompts and completions under the default template, qa_train_prompts.jsonl and
// qa_test_prompts.jsonl, each written whole or not at all. Returns the paths written.
std::vector<std::string> write_builtin_qa(const std::string& dir, int n_train = 4000, int n_test = 500);

}  // namespace rkv

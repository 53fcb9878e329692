#include "src/qa_data.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "src/file_io.h"

namespace rkv {

namespace {

QaExample parse_line(const std::string& line) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) throw std::invalid_argument("not valid JSON");
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    for (auto& [key, value] : j.items())
        if (key != "context" && key != "question" && key != "answers" && key != "id" && key != "title")
            throw std::invalid_argument(fmt::format("unknown field \"{}\" (known: context, question, answers)", key));
    QaExample ex;
    for (auto [key, field] : {std::pair{"context", &ex.context}, {"question", &ex.question}}) {
        if (!j.contains(key)) throw std::invalid_argument(fmt::format("no \"{}\"", key));
        if (!j[key].is_string()) throw std::invalid_argument(fmt::format("\"{}\" is not a string", key));
        *field = j[key].get<std::string>();
    }
    if (!j.contains("answers")) throw std::invalid_argument("no \"answers\" (an empty list: unanswerable)");
    if (!j["answers"].is_array()) throw std::invalid_argument("\"answers\" is not a list of strings");
    for (const auto& a : j["answers"]) {
        if (!a.is_string()) throw std::invalid_argument("\"answers\" is not a list of strings");
        ex.answers.push_back(a.get<std::string>());
    }
    return ex;
}

}  // namespace

std::vector<QaExample> read_qa_jsonl(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error(fmt::format("{}: cannot open", path));
    std::vector<QaExample> out;
    std::string line;
    for (int n = 1; std::getline(f, line); n++) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        try {
            out.push_back(parse_line(line));
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(fmt::format("{}:{}: {}", path, n, e.what()));
        }
    }
    if (out.empty()) throw std::runtime_error(fmt::format("{}: no examples", path));
    return out;
}

std::string parse_qa_template(const std::string& tmpl) {
    std::string out;
    for (size_t i = 0; i < tmpl.size(); i++) {
        if (tmpl[i] == '\\' && i + 1 < tmpl.size() && (tmpl[i + 1] == 'n' || tmpl[i + 1] == 't')) {
            out += tmpl[++i] == 'n' ? '\n' : '\t';
            continue;
        }
        if (tmpl[i] == '{') {
            const size_t close = tmpl.find('}', i);
            const std::string name = close == std::string::npos ? "" : tmpl.substr(i + 1, close - i - 1);
            const bool word =
                !name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos;
            if (word && name != "context" && name != "question")
                throw std::invalid_argument(fmt::format(
                    "--qa-template: unknown placeholder {{{}}} (it takes {{context}} and {{question}})", name));
        }
        out += tmpl[i];
    }
    if (out.find("{question}") == std::string::npos)
        throw std::invalid_argument("--qa-template: it must hold {question}");
    return out;
}

std::string qa_prompt(const std::string& tmpl, const QaExample& ex) {
    std::string out;
    for (size_t i = 0; i < tmpl.size();) {
        if (tmpl.compare(i, 9, "{context}") == 0) {
            out += ex.context;
            i += 9;
        } else if (tmpl.compare(i, 10, "{question}") == 0) {
            out += ex.question;
            i += 10;
        } else {
            out += tmpl[i++];
        }
    }
    return out;
}

std::string qa_completion(const QaExample& ex) { return ex.answers.empty() ? "\n" : " " + ex.answers.front() + "\n"; }

std::string qa_jsonl(const std::vector<QaExample>& examples) {
    std::string out;
    for (const QaExample& ex : examples)
        out +=
            nlohmann::json{{"context", ex.context}, {"question", ex.question}, {"answers", ex.answers}}.dump() + "\n";
    return out;
}

std::string prompt_completion_jsonl(const std::vector<QaExample>& examples, const std::string& tmpl) {
    std::string out;
    for (const QaExample& ex : examples)
        out += nlohmann::json{{"prompt", qa_prompt(tmpl, ex)}, {"completion", qa_completion(ex)}}.dump() + "\n";
    return out;
}

std::vector<std::string> write_builtin_qa(const std::string& dir, int n_train, int n_test) {
    std::filesystem::create_directories(dir);
    const std::string tmpl = parse_qa_template(kDefaultQaTemplate);
    std::vector<std::string> written;
    for (auto [name, split, n] :
         {std::tuple{"train", CorpusSplit::train, n_train}, {"test", CorpusSplit::val, n_test}}) {
        const std::vector<QaExample> examples = builtin_qa(kBuiltinCorpusSeed, split, n);
        const std::string data = fmt::format("{}/qa_{}.jsonl", dir, name);
        const std::string prompts = fmt::format("{}/qa_{}_prompts.jsonl", dir, name);
        write_text_atomic(data, qa_jsonl(examples));
        write_text_atomic(prompts, prompt_completion_jsonl(examples, tmpl));
        written.push_back(data);
        written.push_back(prompts);
    }
    return written;
}

}  // namespace rkv

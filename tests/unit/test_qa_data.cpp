// The built-in QA task and QA files: answers are spans of their context, unanswerable questions
// ask what the context never states, files round-trip and bad lines are refused by file:line.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "data/tokenizer.h"
#include "src/qa_data.h"
#include "src/qa_metrics.h"

using namespace rkv;
namespace fs = std::filesystem;

TEST_CASE("the built-in QA task asks facts its contexts state, or never state", "[qa][data]") {
    const std::vector<QaExample> test = builtin_qa(0, CorpusSplit::val, 400);
    REQUIRE(test.size() == 400);
    int unanswerable = 0;
    for (const QaExample& ex : test) {
        INFO(ex.context << "\n" << ex.question);
        CHECK(ex.context.size() >= size_t(kQaContextBytes / 2) - 1);
        CHECK(ex.context.size() < size_t(kQaContextBytes) + 200);
        CHECK(ex.context.find(char(kDocStart)) == std::string::npos);
        CHECK(ex.question.back() == '?');
        // The statement of the fact: what the question asks, with "?" cut ("key of kavo?" is stated
        // as "the key of kavo is 7351.", "where does kavo live?" as "kavo lives in tesim.").
        const std::string subject = ex.question.substr(0, ex.question.size() - 1);
        std::string name = subject.substr(subject.rfind(' ') + 1);
        if (subject.rfind("what color does ", 0) == 0) name = subject.substr(16, subject.size() - 16 - 5);
        if (subject.rfind("where does ", 0) == 0) name = subject.substr(11, subject.size() - 11 - 5);
        const std::string stated = subject.rfind("key of", 0) == 0        ? "the key of " + name + " is "
                                   : subject.rfind("password of", 0) == 0 ? "the password of " + name + " is "
                                   : subject.rfind("what color", 0) == 0  ? name + " likes the color "
                                                                          : name + " lives in ";
        if (ex.answers.empty()) {
            unanswerable++;
            CHECK(ex.context.find(stated) == std::string::npos);
        } else {
            REQUIRE(ex.answers.size() == 1);
            CHECK(ex.context.find(stated + ex.answers[0] + ".") != std::string::npos);
        }
    }
    CHECK(unanswerable > 400 / 10);  // one in five where the cast has a fact never stated
    CHECK(unanswerable < 400 / 4);
    // Deterministic, and train and test are other documents.
    const std::vector<QaExample> again = builtin_qa(0, CorpusSplit::val, 400);
    const std::vector<QaExample> train = builtin_qa(0, CorpusSplit::train, 400);
    for (size_t i = 0; i < test.size(); i++) {
        CHECK(again[i].context == test[i].context);
        CHECK(again[i].answers == test[i].answers);
        CHECK(train[i].context != test[i].context);
    }
}

TEST_CASE("QA files round-trip, and bad lines are refused by file and line", "[qa][data]") {
    const fs::path dir = fs::temp_directory_path() / fmt::format("qa_data_test_{}", ::getpid());
    fs::create_directories(dir);
    const std::vector<std::string> written = write_builtin_qa(dir.string(), 30, 20);
    REQUIRE(written.size() == 4);
    const std::vector<QaExample> test = read_qa_jsonl((dir / "qa_test.jsonl").string());
    const std::vector<QaExample> built = builtin_qa(kBuiltinCorpusSeed, CorpusSplit::val, 20);
    REQUIRE(test.size() == 20);
    for (size_t i = 0; i < test.size(); i++) {
        CHECK(test[i].context == built[i].context);
        CHECK(test[i].question == built[i].question);
        CHECK(test[i].answers == built[i].answers);
    }
    std::ifstream prompts(dir / "qa_test_prompts.jsonl");
    std::string line;
    std::getline(prompts, line);
    const auto first = nlohmann::json::parse(line);
    CHECK(first["prompt"] == built[0].context + "\nQuestion: " + built[0].question + "\nAnswer:");
    CHECK(first["completion"] == (built[0].answers.empty() ? "\n" : " " + built[0].answers[0] + "\n"));

    const std::string good = R"({"context": "c", "question": "q?", "answers": ["a"], "id": "x1"})";
    for (auto [bad, why] : std::vector<std::pair<std::string, std::string>>{
             {"{\"context\": \"c\", \"question\": ", "not valid JSON"},
             {"[1, 2]", "not a JSON object"},
             {R"({"question": "q", "answers": []})", "no \"context\""},
             {R"({"context": 3, "question": "q", "answers": []})", "\"context\" is not a string"},
             {R"({"context": "c", "question": "q"})", "no \"answers\""},
             {R"({"context": "c", "question": "q", "answers": "a"})", "not a list of strings"},
             {R"({"context": "c", "question": "q", "answers": [{"text": "a"}]})", "not a list of strings"},
             {R"({"context": "c", "question": "q", "answers": [], "is_impossible": true})", "\"is_impossible\""},
             {"", "not valid JSON"}}) {
        const std::string path = (dir / "bad.jsonl").string();
        std::ofstream(path) << good << "\n" << good << "\n" << bad << "\n";
        INFO(bad);
        CHECK_THROWS_WITH(read_qa_jsonl(path), Catch::Contains(path + ":3: ") && Catch::Contains(why));
    }
    std::ofstream(dir / "empty.jsonl").close();
    CHECK_THROWS_WITH(read_qa_jsonl((dir / "empty.jsonl").string()), Catch::Contains("no examples"));
    CHECK_THROWS_WITH(read_qa_jsonl((dir / "missing.jsonl").string()), Catch::Contains("cannot open"));
    fs::remove_all(dir);
}

TEST_CASE("prompt templates", "[qa]") {
    const QaExample ex{"kavo lives in tesim.", "where does kavo live?", {"tesim"}};
    CHECK(qa_prompt(parse_qa_template(kDefaultQaTemplate), ex) ==
          "kavo lives in tesim.\nQuestion: where does kavo live?\nAnswer:");
    CHECK(qa_prompt(parse_qa_template("Q: {question}\\nC: {context}\\tA:"), ex) ==
          "Q: where does kavo live?\nC: kavo lives in tesim.\tA:");
    CHECK(qa_prompt(parse_qa_template("{question} {x y} {}"), ex) == "where does kavo live? {x y} {}");
    CHECK_THROWS_WITH(parse_qa_template("{contxt} {question}"), Catch::Contains("{contxt}"));
    CHECK_THROWS_WITH(parse_qa_template("{context} only"), Catch::Contains("{question}"));
    CHECK(qa_completion(ex) == " tesim\n");
    CHECK(qa_completion({"c", "q", {}}) == "\n");
}

TEST_CASE("QA lines and templates never crash on random input", "[qa][data]") {
    std::mt19937_64 rng(std::random_device{}());
    const fs::path path = fs::temp_directory_path() / fmt::format("qa_fuzz_{}.jsonl", ::getpid());
    const std::string good = R"({"context": "kavo lives in tesim.", "question": "where?", "answers": ["tesim"]})";
    for (int i = 0; i < 2000; i++) {
        std::string line = good;
        for (int j = 0, n = int(rng() % 4) + 1; j < n; j++) {  // a few bytes changed, dropped or added
            const size_t at = rng() % (line.size() + 1);
            const char c = char(rng() % 256);
            switch (rng() % 3) {
                case 0:
                    if (at < line.size()) line[at] = c;
                    break;
                case 1:
                    if (at < line.size()) line.erase(at, 1);
                    break;
                default: line.insert(line.begin() + ptrdiff_t(at), c);
            }
        }
        std::ofstream(path, std::ios::binary) << line;
        try {
            const std::vector<QaExample> ex = read_qa_jsonl(path.string());
            CHECK(ex.size() >= 1);
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()).find(path.string()) == 0);
        }
        try {
            qa_prompt(parse_qa_template(line), QaExample{"c", "q", {}});
        } catch (const std::invalid_argument&) {
        }
    }
    fs::remove(path);
}

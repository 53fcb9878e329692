// JSON Lines of prompt/completion pairs -> fine-tuning rows (policy in sft_rows.h).
#include "data/sft_rows.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace rkv {

namespace {

void check_options(const SftOptions& o) {
    auto bad = [](const std::string& what) { throw DataError("fine-tuning rows: " + what); };
    if (o.T < 2 || o.T > kSftMaxT) bad(fmt::format("row length {} must be in [2, {}]", o.T, kSftMaxT));
    if (o.prompt_field.empty() || o.completion_field.empty()) bad("the prompt and completion fields need names");
    if (o.bos < -1 || o.eos < -1 || o.pad < 0)
        bad(fmt::format("bos {} and eos {} must be ids or -1 (none), pad {} an id", o.bos, o.eos, o.pad));
    if (!(o.val_fraction >= 0 && o.val_fraction <= 1))
        bad(fmt::format("validation fraction {} must be in [0, 1]", o.val_fraction));
}

// The field of a line's object, which must be a string.
std::string field(const nlohmann::json& line, const std::string& name, const std::string& where) {
    auto it = line.find(name);
    if (it == line.end()) throw DataError(fmt::format("{}: no \"{}\" field", where, name));
    if (!it->is_string()) throw DataError(fmt::format("{}: \"{}\" is {}, not a string", where, name, it->type_name()));
    return it->get<std::string>();
}

// Appends one example as a row of rows.T tokens to `rows`, or counts why it is dropped.
// Returns whether it was kept.
bool add_example(std::vector<int32_t> prompt, const std::vector<int32_t>& completion, const SftOptions& o,
                 SftRows& rows, SftCounts& counts) {
    const int64_t bos = o.bos >= 0, eos = o.eos >= 0;
    const int64_t fixed = bos + int64_t(completion.size()) + eos;  // what is never cut
    if (fixed + int64_t(prompt.size()) > o.T) {
        if (prompt.empty() || fixed + 1 > o.T) {
            counts.dropped_too_long++;
            return false;
        }
        const int64_t cut = int64_t(prompt.size()) - (o.T - fixed);
        prompt.erase(prompt.begin(), prompt.begin() + cut);
        counts.prompts_truncated++;
        counts.prompt_tokens_cut += cut;
    }
    std::vector<int32_t> tokens;  // (T)
    std::vector<uint8_t> mask;    // (T)
    tokens.reserve(o.T);
    mask.reserve(o.T);
    auto put = [&](int32_t id, bool loss) {
        tokens.push_back(id);
        mask.push_back(loss && !mask.empty());  // position 0 is no one's target
    };
    if (bos) put(o.bos, false);
    for (int32_t id : prompt) put(id, false);
    for (int32_t id : completion) put(id, true);
    if (eos) put(o.eos, true);
    int64_t loss = 0;
    for (uint8_t m : mask) loss += m;
    if (loss == 0) {
        counts.dropped_no_loss++;
        return false;
    }
    tokens.resize(o.T, o.pad);
    mask.resize(o.T, 0);
    rows.tokens.insert(rows.tokens.end(), tokens.begin(), tokens.end());
    rows.mask.insert(rows.mask.end(), mask.begin(), mask.end());
    counts.loss_tokens += loss;
    return true;
}

}  // namespace

SftSplits make_sft_rows(const std::vector<std::string>& jsonl_files, const Encoder& encode, const SftOptions& o) {
    check_options(o);
    SftSplits s;
    s.train.T = s.val.T = o.T;
    int64_t kept = 0;
    for (const std::string& path : jsonl_files) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw DataError(fmt::format("{}: cannot open", path));
        std::string line;
        for (int64_t number = 1; std::getline(in, line); number++) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            const std::string where = fmt::format("{}:{}", path, number);
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(line);
            } catch (const nlohmann::json::parse_error& e) {
                throw DataError(fmt::format("{}: not JSON: {}", where, e.what()));
            }
            if (!j.is_object()) throw DataError(fmt::format("{}: a JSON {}, not an object", where, j.type_name()));
            const std::string prompt = field(j, o.prompt_field, where);
            const std::string completion = field(j, o.completion_field, where);
            s.counts.examples++;
            // Kept example i goes to validation when floor((i + 1) f) > floor(i f): a share f,
            // spread evenly over the file.
            const bool val = std::floor(double(kept + 1) * o.val_fraction) > std::floor(double(kept) * o.val_fraction);
            if (add_example(encode(prompt), encode(completion), o, val ? s.val : s.train, s.counts)) {
                kept++;
                (val ? s.counts.val_rows : s.counts.train_rows)++;
            }
        }
        if (in.bad()) throw DataError(fmt::format("{}: read error", path));
    }
    return s;
}

std::vector<std::string> write_sft_splits(const std::string& dir, const std::string& name, const SftSplits& splits,
                                          int vocab_size) {
    const int width = vocab_size <= 65536 ? 2 : 4;
    std::filesystem::create_directories(dir);
    std::vector<std::string> paths;
    for (auto [split, rows] : {std::pair{"train", &splits.train}, std::pair{"val", &splits.val}}) {
        if (rows->rows() == 0) continue;
        paths.push_back(fmt::format("{}/{}_{}.bin", dir, name, split));
        write_sft_rows(paths.back(), *rows, width);
    }
    return paths;
}

std::string sft_report(const SftCounts& c) {
    return fmt::format(
        "{} examples: {} train rows, {} validation rows, {} tokens carry loss; {} prompts truncated "
        "from the left ({} tokens cut); dropped: {} with a completion too long for a row, {} with "
        "nothing to learn",
        c.examples, c.train_rows, c.val_rows, c.loss_tokens, c.prompts_truncated, c.prompt_tokens_cut,
        c.dropped_too_long, c.dropped_no_loss);
}

}  // namespace rkv

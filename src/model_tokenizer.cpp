#include "src/model_tokenizer.h"

#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/file_io.h"

namespace fs = std::filesystem;

namespace rkv {

std::vector<fs::path> side_folders(const std::string& ckpt) {
    if (ckpt.empty()) return {};
    const fs::path p = fs::absolute(ckpt);
    const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
    return {dir, dir.parent_path()};
}

std::optional<HfTokenizer> load_tokenizer(const std::string& tokenizer_json, const std::string& ckpt) {
    if (!tokenizer_json.empty()) return HfTokenizer(tokenizer_json);
    for (const fs::path& dir : side_folders(ckpt))
        if (fs::exists(dir / "tokenizer.json")) return HfTokenizer((dir / "tokenizer.json").string());
    return std::nullopt;
}

std::vector<int> eos_ids(const std::string& ckpt) {
    for (const char* name : {"generation_config.json", "config.json"})
        for (const fs::path& dir : side_folders(ckpt)) {
            if (!fs::exists(dir / name)) continue;
            const nlohmann::json j = read_json_file((dir / name).string());
            const nlohmann::json eos = j.is_object() ? j.value("eos_token_id", nlohmann::json()) : nlohmann::json();
            if (eos.is_number_integer()) return {eos.get<int>()};
            if (eos.is_array()) {
                std::vector<int> ids;
                for (const auto& id : eos) {
                    if (!id.is_number_integer())
                        throw std::invalid_argument(
                            fmt::format("{}: eos_token_id holds {}, not a token id", (dir / name).string(), id.dump()));
                    ids.push_back(id.get<int>());
                }
                return ids;
            }
        }
    return {};
}

}  // namespace rkv

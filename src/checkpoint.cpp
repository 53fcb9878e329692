#include "src/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>

#include "src/file_io.h"
#include "src/llmc_checkpoint.h"
#include "src/safetensors.h"

namespace fs = std::filesystem;

namespace rkv {

namespace {

std::vector<TensorRef> named(const ParamTable& table, const float* base, const std::string& prefix) {
    std::vector<TensorRef> refs;
    for (auto& t : table.tensors) refs.push_back({prefix + t.name, t.shape, base + t.offset});
    return refs;
}

void read_all(const SafetensorsFile& file, const ParamTable& table, const std::string& prefix, float* dst) {
    for (auto& t : table.tensors) file.read(prefix + t.name, t.shape, dst + t.offset);
}

}  // namespace

void save_model(const std::string& dir, const ModelConfig& config, const float* params) {
    fs::create_directories(dir);
    write_safetensors(dir + "/model.safetensors", named(ParamTable(config), params, ""), {{"format", "pt"}});
    write_text_atomic(dir + "/config.json", to_json(config).dump(2) + "\n");
}

std::string save_checkpoint(const std::string& out_dir, long step, const ModelConfig& config, const float* params,
                            const std::vector<float>& m, const std::vector<float>& v, const nlohmann::json& state) {
    const ParamTable table(config);
    const std::string final_dir = fmt::format("{}/ckpt_{:08d}", out_dir, step);
    const std::string tmp = final_dir + ".tmp";
    if (fs::exists(final_dir)) return final_dir;     // this step is already saved, whole
    fs::remove_all(tmp);
    save_model(tmp, config, params);
    auto moments = named(table, m.data(), "m.");
    for (auto& r : named(table, v.data(), "v.")) moments.push_back(r);
    write_safetensors(tmp + "/optimizer.safetensors", moments);
    write_text_atomic(tmp + "/state.json", state.dump(2) + "\n");
    sync_dir(tmp);
    fs::rename(tmp, final_dir);
    sync_dir(out_dir);
    return final_dir;
}

Checkpoint load_checkpoint(const std::string& path, bool with_optimizer) {
    if (!fs::is_directory(path))
        throw std::runtime_error(fmt::format("{}: not a checkpoint directory", path));
    Checkpoint ck;
    ck.config = load_config(path + "/config.json");
    const ParamTable table(ck.config);
    ck.params.resize(table.total);
    read_all(SafetensorsFile(path + "/model.safetensors"), table, "", ck.params.data());
    if (with_optimizer) {
        const SafetensorsFile opt(path + "/optimizer.safetensors");
        ck.m.resize(table.total);
        ck.v.resize(table.total);
        read_all(opt, table, "m.", ck.m.data());
        read_all(opt, table, "v.", ck.v.data());
        std::ifstream f(path + "/state.json");
        if (!f) throw std::runtime_error(fmt::format("{}/state.json: cannot open", path));
        try {
            ck.state = nlohmann::json::parse(f);
        } catch (const std::exception& e) {
            throw std::runtime_error(fmt::format("{}/state.json: {}", path, e.what()));
        }
    }
    return ck;
}

Checkpoint load_model_weights(const std::string& path) {
    if (fs::is_directory(path)) return load_checkpoint(path, false);
    LlmcCheckpoint ck = load_llmc_checkpoint(path);
    return {ck.config, std::move(ck.params), {}, {}, {}};
}

std::optional<std::string> latest_checkpoint(const std::string& out_dir) {
    if (!fs::is_directory(out_dir)) return std::nullopt;
    const std::regex name("ckpt_[0-9]{8}");
    std::optional<std::string> best;
    for (auto& e : fs::directory_iterator(out_dir)) {
        const std::string n = e.path().filename().string();
        if (e.is_directory() && std::regex_match(n, name) && (!best || n > fs::path(*best).filename().string()))
            best = e.path().string();
    }
    return best;
}

std::string resolve_checkpoint(const std::string& path) {
    if (!fs::is_directory(path) || fs::exists(fs::path(path) / "model.safetensors")) return path;
    const auto latest = latest_checkpoint(path);
    if (!latest) throw std::invalid_argument(fmt::format("{}: no checkpoint in this folder", path));
    return *latest;
}

}  // namespace rkv

#include "src/checkpoint.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
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

}  // namespace

std::string checkpoint_dir(const std::string& out_dir, long step) {
    return fmt::format("{}/ckpt_{:08d}", out_dir, step);
}

std::string checkpoint_tmp(const std::string& out_dir, long step) { return checkpoint_dir(out_dir, step) + ".tmp"; }

void write_checkpoint_model(const std::string& tmp, const ModelConfig& config, const float* params,
                            const nlohmann::json& state, const ModelFolderExtras& extras) {
    save_model_folder(tmp, config, params, extras);
    write_text_atomic(tmp + "/state.json", state.dump(2) + "\n");
}

void commit_checkpoint(const std::string& out_dir, long step) {
    const std::string tmp = checkpoint_tmp(out_dir, step);
    sync_dir(tmp);
    fs::rename(tmp, checkpoint_dir(out_dir, step));
    sync_dir(out_dir);
}

std::string save_checkpoint(const std::string& out_dir, long step, const ModelConfig& config, const float* params,
                            const std::vector<float>& m, const std::vector<float>& v, const nlohmann::json& state,
                            const ModelFolderExtras& extras) {
    const ParamTable table(config);
    const std::string final_dir = checkpoint_dir(out_dir, step), tmp = checkpoint_tmp(out_dir, step);
    if (fs::exists(final_dir)) return final_dir;  // this step is already saved, whole
    fs::remove_all(tmp);
    write_checkpoint_model(tmp, config, params, state, extras);
    auto moments = named(table, m.data(), "m.");
    for (auto& r : named(table, v.data(), "v.")) moments.push_back(r);
    write_safetensors(tmp + "/optimizer.safetensors", moments);
    commit_checkpoint(out_dir, step);
    return final_dir;
}

Checkpoint load_checkpoint(const std::string& path, bool with_state) {
    if (!fs::is_directory(path)) throw std::runtime_error(fmt::format("{}: not a checkpoint directory", path));
    const ModelFolder folder(path);  // checked against its config before anything is allocated
    Checkpoint ck;
    ck.config = folder.config();
    ck.source = path;
    const ParamTable table(ck.config);
    ck.params.resize(table.total);
    folder.read(ck.params.data());
    if (with_state) ck.state = read_json_file(path + "/state.json");
    return ck;
}

OptimizerSlice load_optimizer(const std::string& dir, const nlohmann::json& state, const ParamTable& table,
                              size_t begin, size_t count, bool master) {
    const std::string file = dir + "/state.json";
    const long step = state.value("step", 0L);
    if (state.contains("optimizer_shards")) {
        const nlohmann::json& w = state["optimizer_shards"];
        if (!w.is_number_integer() || w.get<int64_t>() < 1 || w.get<int64_t>() > INT32_MAX)
            throw std::runtime_error(
                fmt::format("{}: \"optimizer_shards\" must be a positive integer, got {}", file, w.dump()));
        return read_optimizer_shards(dir, step, table.total, int(w.get<int64_t>()), begin, count, master);
    }
    // The whole state in one file: read it all, keep the slice.
    const SafetensorsFile opt(dir + "/optimizer.safetensors");
    std::vector<float> m(table.total), v(table.total);
    for (auto& t : table.tensors) {
        opt.read("m." + t.name, t.shape, m.data() + t.offset);
        opt.read("v." + t.name, t.shape, v.data() + t.offset);
    }
    OptimizerSlice s;
    s.m.assign(count, 0.0f);
    s.v.assign(count, 0.0f);
    for (size_t i = begin; i < std::min(begin + count, table.total); i++) {
        s.m[i - begin] = m[i];
        s.v[i - begin] = v[i];
    }
    return s;
}

ModelWeights::ModelWeights(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw std::runtime_error(fmt::format("{}: no such file or directory", path));
    if (fs::is_directory(path)) {
        std::string dir = path;
        if (!is_model_folder(dir)) {
            const auto latest = latest_checkpoint(dir);
            if (!latest)
                throw std::runtime_error(
                    fmt::format("{}: neither a model folder (model.safetensors or "
                                "model.safetensors.index.json) nor a run folder (ckpt_<step>)",
                                path));
            dir = *latest;
        }
        folder_ = std::make_unique<ModelFolder>(dir);
        config_ = folder_->config();
        source_ = dir;
        return;
    }
    LlmcCheckpoint ck = load_llmc_checkpoint(path);
    config_ = ck.config;
    llmc_ = std::move(ck.params);
}

void ModelWeights::read(float* params) const {
    if (folder_)
        folder_->read(params);
    else
        std::copy(llmc_.begin(), llmc_.end(), params);
}

void ModelWeights::read_each(const std::function<void(size_t, const float*, size_t)>& sink) const {
    if (folder_)
        folder_->read_each(sink);
    else
        sink(0, llmc_.data(), llmc_.size());
}

Checkpoint load_model_weights(const std::string& path) {
    const ModelWeights weights(path);
    Checkpoint ck;
    ck.config = weights.config();
    ck.source = weights.source();
    ck.params.resize(ParamTable(ck.config).total);
    weights.read(ck.params.data());
    return ck;
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

}  // namespace rkv

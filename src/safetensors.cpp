#include "src/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "src/file_io.h"

namespace rkv {

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    size_t offset = 0;
    for (auto& t : tensors) {
        size_t n = 1;
        for (auto d : t.shape) n *= size_t(d);
        header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + n * 4}}};
        offset += n * 4;
    }
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');    // the format pads the header with spaces to 8 bytes
    AtomicFile f(path);
    const uint64_t len = text.size();
    f.write(&len, 8);
    f.write(text.data(), text.size());
    for (auto& t : tensors) {
        size_t n = 1;
        for (auto d : t.shape) n *= size_t(d);
        f.write(t.data, n * 4);
    }
    f.commit();
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error(fmt::format("{}: cannot open", path));
    const auto size = std::filesystem::file_size(path);
    uint64_t len = 0;
    if (size < 8 || !f.read(reinterpret_cast<char*>(&len), 8) || len > size - 8)
        throw std::runtime_error(fmt::format("{}: not a safetensors file (bad header length)", path));
    std::string text(len, '\0');
    f.read(text.data(), std::streamsize(len));
    try {
        header_ = nlohmann::json::parse(text);
    } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("{}: bad safetensors header: {}", path, e.what()));
    }
    data_.resize(size - 8 - len);
    if (!f.read(data_.data(), std::streamsize(data_.size())))
        throw std::runtime_error(fmt::format("{}: cannot read the tensor data", path));
}

void SafetensorsFile::read(const std::string& name, const std::vector<int64_t>& shape, float* dst) const {
    if (!has(name)) throw std::runtime_error(fmt::format("{}: no tensor '{}'", path_, name));
    const auto& h = header_[name];
    const auto file_shape = h["shape"].get<std::vector<int64_t>>();
    if (file_shape != shape)
        throw std::runtime_error(fmt::format("{}: tensor '{}' has shape [{}], expected [{}]", path_, name,
                                             fmt::join(file_shape, ", "), fmt::join(shape, ", ")));
    const std::string dtype = h["dtype"];
    const size_t begin = h["data_offsets"][0], end = h["data_offsets"][1];
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    const size_t width = dtype == "F32" ? 4 : dtype == "BF16" ? 2 : 0;
    if (!width) throw std::runtime_error(fmt::format("{}: tensor '{}' has dtype {}, not F32 or BF16", path_, name, dtype));
    if (end - begin != n * width || end > data_.size())
        throw std::runtime_error(fmt::format("{}: tensor '{}' lies outside the file (truncated?)", path_, name));
    const char* src = data_.data() + begin;
    if (width == 4) {
        std::memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; i++) {       // bf16 is the top half of an fp32
        uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        const uint32_t bits = uint32_t(b) << 16;
        std::memcpy(dst + i, &bits, 4);
    }
}

std::map<std::string, std::string> SafetensorsFile::metadata() const {
    if (!header_.contains("__metadata__")) return {};
    return header_["__metadata__"].get<std::map<std::string, std::string>>();
}

}  // namespace rkv

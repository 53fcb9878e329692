// The safetensors format: an 8-byte little-endian header length, a JSON header mapping
// each tensor name to {dtype, shape, data_offsets}, then the raw little-endian data.
// rkv writes F32; it reads F32 and BF16 (as Hugging Face checkpoints ship).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace rkv {

struct TensorRef {
    std::string name;
    std::vector<int64_t> shape;
    const float* data;
};

// Written to `path`.tmp and renamed, so `path` is never half-written.
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);   // throws naming the file and the problem
    bool has(const std::string& name) const { return header_.contains(name); }
    // Copies tensor `name` into dst as float; its shape must equal `shape`.
    void read(const std::string& name, const std::vector<int64_t>& shape, float* dst) const;
    std::map<std::string, std::string> metadata() const;

private:
    std::string path_;
    nlohmann::json header_;
    std::vector<char> data_;
};

}  // namespace rkv

// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON mapping
// each tensor name to {dtype, shape, data_offsets} (and an optional "__metadata__" string
// map), then the data section, which the tensors' [begin, end) byte ranges cover exactly.
// rkv writes F32 or BF16; it reads F32, BF16 and F16 as float, converting as it copies.
//
// A file is read through a memory map: opening it reads and checks the header only, and
// each tensor goes straight from the mapped pages into the caller's buffer (no copy of the
// file on the host), its pages dropped again once read.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rkv {

enum class Dtype { F32, BF16, F16 };
// "F32", "BF16", "F16"; parse_dtype also takes the lower-case spellings "f32", "bf16", "f16".
const char* dtype_name(Dtype d);
Dtype parse_dtype(const std::string& name);  // throws std::invalid_argument naming it

struct TensorRef {
    std::string name;
    std::vector<int64_t> shape;
    const float* data;
};

// Written to a temporary beside `path` and renamed, so `path` is never half-written. BF16
// rounds to nearest even.
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {}, Dtype dtype = Dtype::F32);

class SafetensorsFile {
public:
    struct Entry {
        std::string dtype;  // as in the header, e.g. "BF16", "U8"
        std::vector<int64_t> shape;
        uint64_t begin = 0, end = 0;  // bytes, in the data section
    };

    // Maps the file and checks everything the format promises before any data is touched:
    // the header length against the file size, the header a JSON object, "__metadata__" a
    // map of strings, each entry a known dtype, a shape of non-negative sizes whose byte count
    // fits in 64 bits and equals end - begin, begin <= end, and the entries tiling the data
    // section exactly (no gap, no overlap, nothing past it). Throws std::runtime_error
    // naming the file (and the tensor, where one is at fault).
    explicit SafetensorsFile(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(SafetensorsFile&& other) noexcept;
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(SafetensorsFile&&) = delete;

    const std::string& path() const { return path_; }
    bool has(const std::string& name) const { return tensors_.count(name) != 0; }
    const std::map<std::string, Entry>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    uint64_t data_bytes() const { return size_ - data_start_; }

    // Throws naming the file and the tensor unless `name` exists with this shape and a dtype
    // read() converts (F32, BF16, F16).
    void check(const std::string& name, const std::vector<int64_t>& shape) const;
    // Tensor `name` (after check) into dst as float: (shape[0], shape[1]) row-major, or with
    // `transpose` a 2-D tensor written as (shape[1], shape[0]).
    void read(const std::string& name, const std::vector<int64_t>& shape, float* dst, bool transpose = false) const;
    // Elements [first, first + count) of the 1-D tensor `name` into dst as float: a part of a
    // tensor, read without touching the rest (src/sharded_checkpoint.h).
    void read_range(const std::string& name, uint64_t first, uint64_t count, float* dst) const;

private:
    std::string path_;
    std::map<std::string, Entry> tensors_;
    std::map<std::string, std::string> metadata_;
    const unsigned char* map_ = nullptr;
    uint64_t size_ = 0, data_start_ = 0;

    void parse_header(const std::string& text);
    // (rows, cols) elements of e from its element `first` on into dst, converted to float.
    void read_elements(const Entry& e, uint64_t first, uint64_t rows, uint64_t cols, float* dst, bool transpose) const;
};

// IEEE half precision to float, exactly (subnormals, infinities and NaN included).
float f16_to_float(uint16_t h);

}  // namespace rkv

#include "src/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "src/file_io.h"
#include "src/llmc_checkpoint.h"

namespace rkv {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so must the host be");

namespace {

// The format's own bound on the header (the reference implementation refuses larger ones).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

// Every dtype the format defines with whole bytes per element, and that width. Tensors of
// the others may sit in a file (e.g. GPT-2's U8 attention masks) but only floats are read.
uint64_t dtype_width(const std::string& dtype) {
    static const std::map<std::string, uint64_t> widths = {
        {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
        {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8},
    };
    auto it = widths.find(dtype);
    return it == widths.end() ? 0 : it->second;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error(fmt::format("{}: {}", path, what));
}

// A JSON number that is a whole number >= 0, as uint64; false otherwise (floats, negatives).
bool get_size(const nlohmann::json& j, uint64_t& out) {
    if (j.is_number_unsigned()) {
        out = j.get<uint64_t>();
        return true;
    }
    if (j.is_number_integer() && j.get<int64_t>() >= 0) {
        out = uint64_t(j.get<int64_t>());
        return true;
    }
    return false;
}

uint64_t numel(const std::vector<int64_t>& shape) {
    uint64_t n = 1;
    for (auto d : shape) n *= uint64_t(d);
    return n;
}

// Element i of a tensor stored as `dtype`, as float.
template <Dtype D>
float load(const unsigned char* src, uint64_t i) {
    if constexpr (D == Dtype::F32) {
        float x;
        std::memcpy(&x, src + 4 * i, 4);
        return x;
    } else {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        return D == Dtype::BF16 ? bf16_to_float(h) : f16_to_float(h);
    }
}

// (rows, cols) from src into dst, either as is or transposed into (cols, rows).
template <Dtype D>
void convert(const unsigned char* src, uint64_t rows, uint64_t cols, float* dst, bool transpose) {
    if (!transpose) {
        if constexpr (D == Dtype::F32)
            std::memcpy(dst, src, rows * cols * 4);
        else
            for (uint64_t i = 0; i < rows * cols; i++) dst[i] = load<D>(src, i);
        return;
    }
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t c = 0; c < cols; c++) dst[c * rows + r] = load<D>(src, r * cols + c);
}

}  // namespace

const char* dtype_name(Dtype d) { return d == Dtype::F32 ? "F32" : d == Dtype::BF16 ? "BF16" : "F16"; }

Dtype parse_dtype(const std::string& name) {
    for (Dtype d : {Dtype::F32, Dtype::BF16, Dtype::F16}) {
        std::string lower = dtype_name(d);
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (name == dtype_name(d) || name == lower) return d;
    }
    throw std::invalid_argument(fmt::format("dtype '{}' is not one of f32, bf16, f16", name));
}

float f16_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // infinity, NaN (payload kept)
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);  // normal: rebias 15 -> 127
    } else if (mant == 0) {
        bits = sign;  // signed zero
    } else {          // subnormal: mant * 2^-24, exact
        const float x = float(mant) * 0x1p-24f;
        bits = sign | std::bit_cast<uint32_t>(x);
    }
    return std::bit_cast<float>(bits);
}

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata, Dtype dtype) {
    if (dtype == Dtype::F16) fail(path, "rkv writes safetensors as F32 or BF16, not F16");
    const uint64_t width = dtype == Dtype::F32 ? 4 : 2;
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (auto& t : tensors) {
        const uint64_t bytes = numel(t.shape) * width;
        header[t.name] = {{"dtype", dtype_name(dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');  // the format pads the header with spaces to 8 bytes
    AtomicFile f(path);
    const uint64_t len = text.size();
    f.write(&len, 8);
    f.write(text.data(), text.size());
    std::vector<uint16_t> half;
    for (auto& t : tensors) {
        const uint64_t n = numel(t.shape);
        if (dtype == Dtype::F32) {
            f.write(t.data, n * 4);
            continue;
        }
        half.resize(n);
        for (uint64_t i = 0; i < n; i++) half[i] = float_to_bf16(t.data[i]);
        f.write(half.data(), n * 2);
    }
    f.commit();
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) fail(path, fmt::format("cannot open safetensors file: {}", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(path, "not a regular file");
    }
    size_ = uint64_t(st.st_size);
    if (size_ < 8) {
        ::close(fd);
        fail(path, fmt::format("not a safetensors file: {} bytes, shorter than the 8-byte header length", size_));
    }
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) fail(path, fmt::format("cannot map the file: {}", std::strerror(errno)));
    map_ = static_cast<const unsigned char*>(map);
    try {
        uint64_t len;
        std::memcpy(&len, map_, 8);
        if (len > size_ - 8)
            fail(path,
                 fmt::format("not a safetensors file: header length {} exceeds the {} bytes after it", len, size_ - 8));
        if (len > kMaxHeaderBytes)
            fail(path,
                 fmt::format("safetensors header of {} bytes exceeds the format's limit of {}", len, kMaxHeaderBytes));
        data_start_ = 8 + len;
        parse_header(std::string(reinterpret_cast<const char*>(map_ + 8), len));
    } catch (...) {
        ::munmap(const_cast<unsigned char*>(map_), size_);
        throw;
    }
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) ::munmap(const_cast<unsigned char*>(map_), size_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      tensors_(std::move(o.tensors_)),
      metadata_(std::move(o.metadata_)),
      map_(o.map_),
      size_(o.size_),
      data_start_(o.data_start_) {
    o.map_ = nullptr;
}

void SafetensorsFile::parse_header(const std::string& text) {
    const std::string& p = path_;
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(text);
    } catch (const std::exception& e) {
        fail(p, fmt::format("bad safetensors header: not JSON ({})", e.what()));
    }
    if (!header.is_object())
        fail(p, fmt::format("bad safetensors header: a JSON {}, not an object", header.type_name()));
    for (auto& [name, value] : header.items()) {
        if (name == "__metadata__") {
            if (!value.is_object()) fail(p, "bad safetensors header: __metadata__ is not an object");
            for (auto& [key, v] : value.items()) {
                if (!v.is_string())
                    fail(p, fmt::format("bad safetensors header: __metadata__ '{}' is not a string", key));
                metadata_[key] = v.get<std::string>();
            }
            continue;
        }
        auto bad = [&](const std::string& why) { fail(p, fmt::format("tensor '{}': {}", name, why)); };
        if (!value.is_object()) bad("its header entry is not an object");
        for (const char* key : {"dtype", "shape", "data_offsets"})
            if (!value.contains(key)) bad(fmt::format("its header entry has no '{}'", key));
        const auto& jd = value.at("dtype");
        const auto& js = value.at("shape");
        const auto& jo = value.at("data_offsets");
        if (!jd.is_string()) bad("dtype is not a string");
        Entry e;
        e.dtype = jd.get<std::string>();
        const uint64_t width = dtype_width(e.dtype);
        if (!width) bad(fmt::format("unknown dtype '{}'", e.dtype));
        if (!js.is_array()) bad("shape is not an array");
        uint64_t elements = 1;
        for (auto& d : js) {
            uint64_t size;
            if (!get_size(d, size) || size > uint64_t(INT64_MAX))
                bad(fmt::format("shape {} holds {}, not a size >= 0", js.dump(), d.dump()));
            if (__builtin_mul_overflow(elements, size, &elements))
                bad(fmt::format("shape {} overflows 64 bits", js.dump()));
            e.shape.push_back(int64_t(size));
        }
        uint64_t bytes;
        if (__builtin_mul_overflow(elements, width, &bytes)) bad(fmt::format("shape {} overflows 64 bits", js.dump()));
        if (!jo.is_array() || jo.size() != 2 || !get_size(jo[0], e.begin) || !get_size(jo[1], e.end))
            bad(fmt::format("data_offsets {} are not two sizes >= 0", jo.dump()));
        if (e.begin > e.end) bad(fmt::format("data_offsets [{}, {}] are out of order", e.begin, e.end));
        if (e.end - e.begin != bytes)
            bad(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", e.begin, e.end,
                            e.end - e.begin, js.dump(), e.dtype, bytes));
        if (e.end > data_bytes())
            bad(fmt::format("data_offsets [{}, {}] lie past the data section's {} bytes (truncated file?)", e.begin,
                            e.end, data_bytes()));
        tensors_[name] = std::move(e);
    }
    // The entries tile the data section: sorted by offsets, each starts where the last ended.
    std::vector<std::pair<const std::string*, const Entry*>> order;
    for (auto& [name, e] : tensors_) order.emplace_back(&name, &e);
    std::sort(order.begin(), order.end(), [](auto& a, auto& b) {
        return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
    });
    uint64_t at = 0;
    const std::string* prev = nullptr;
    for (auto [name, e] : order) {
        if (e->begin < at)
            fail(p, fmt::format("tensor '{}': bytes [{}, {}) overlap tensor '{}', which ends at {}", *name, e->begin,
                                e->end, *prev, at));
        if (e->begin > at)
            fail(p, fmt::format("tensor '{}': starts at byte {}, leaving bytes [{}, {}) of the data section unused",
                                *name, e->begin, at, e->begin));
        at = e->end;
        prev = name;
    }
    if (at != data_bytes())
        fail(p, fmt::format("the data section has {} bytes, its tensors cover {}: {} bytes past the last tensor",
                            data_bytes(), at, data_bytes() - at));
}

void SafetensorsFile::check(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail(path_, fmt::format("no tensor '{}'", name));
    const Entry& e = it->second;
    if (e.shape != shape)
        fail(path_, fmt::format("tensor '{}' has shape [{}], expected [{}]", name, fmt::join(e.shape, ", "),
                                fmt::join(shape, ", ")));
    if (e.dtype != "F32" && e.dtype != "BF16" && e.dtype != "F16")
        fail(path_, fmt::format("tensor '{}' has dtype {}, not F32, BF16 or F16", name, e.dtype));
}

void SafetensorsFile::read(const std::string& name, const std::vector<int64_t>& shape, float* dst,
                           bool transpose) const {
    check(name, shape);
    if (transpose && shape.size() != 2) fail(path_, fmt::format("tensor '{}' is not 2-D: cannot transpose it", name));
    const uint64_t rows = shape.empty() ? 1 : uint64_t(shape[0]), cols = numel(shape) / std::max<uint64_t>(rows, 1);
    read_elements(tensors_.at(name), 0, rows, cols, dst, transpose);
}

void SafetensorsFile::read_range(const std::string& name, uint64_t first, uint64_t count, float* dst) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail(path_, fmt::format("no tensor '{}'", name));
    const Entry& e = it->second;
    if (e.shape.size() != 1) fail(path_, fmt::format("tensor '{}' is not 1-D", name));
    check(name, e.shape);
    if (first > uint64_t(e.shape[0]) || count > uint64_t(e.shape[0]) - first)
        fail(path_, fmt::format("tensor '{}' has {} elements, not [{}, {})", name, e.shape[0], first, first + count));
    read_elements(e, first, 1, count, dst, false);
}

void SafetensorsFile::read_elements(const Entry& e, uint64_t first, uint64_t rows, uint64_t cols, float* dst,
                                    bool transpose) const {
    const unsigned char* src = map_ + data_start_ + e.begin + first * dtype_width(e.dtype);
    if (e.dtype == "F32")
        convert<Dtype::F32>(src, rows, cols, dst, transpose);
    else if (e.dtype == "BF16")
        convert<Dtype::BF16>(src, rows, cols, dst, transpose);
    else
        convert<Dtype::F16>(src, rows, cols, dst, transpose);
    // Drop the pages just read, so the host holds the caller's buffer and not the file too.
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (uintptr_t(src) + page - 1) & ~(page - 1);
    const uintptr_t hi = (uintptr_t(src) + rows * cols * dtype_width(e.dtype)) & ~(page - 1);
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

}  // namespace rkv

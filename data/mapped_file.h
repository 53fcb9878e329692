// A whole file mapped read-only into memory: how shards and fine-tuning row files are read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace rkv {

// Move-only: it owns the mapping. An empty file maps to no memory (data() is null).
// Throws DataError (data/shard.h) naming the file when it cannot be opened or mapped.
class MappedFile {
public:
    explicit MappedFile(const std::string& path);

    const std::string& path() const { return path_; }
    const char* data() const { return map_.get(); }
    int64_t size() const { return bytes_; }

private:
    struct Unmap {
        size_t bytes;
        void operator()(const char* p) const;
    };
    std::string path_;
    int64_t bytes_ = 0;
    std::unique_ptr<const char, Unmap> map_;
};

}  // namespace rkv

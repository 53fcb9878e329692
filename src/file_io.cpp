#include "src/file_io.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

namespace rkv {

// The temporary's name is unique, so that several processes (ranks) may write the same file.
AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(fmt::format("{}.tmp.{}.{:x}", path, ::getpid(), std::random_device{}())) {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) throw std::runtime_error(fmt::format("{}: cannot create: {}", tmp_, std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
    if (f_) {
        std::fclose(f_);
        std::remove(tmp_.c_str());
    }
}

void AtomicFile::write(const void* data, size_t bytes) {
    if (bytes && std::fwrite(data, 1, bytes, f_) != bytes)
        throw std::runtime_error(fmt::format("{}: write failed: {}", tmp_, std::strerror(errno)));
}

void AtomicFile::commit() {
    if (std::fflush(f_) != 0 || fsync(fileno(f_)) != 0)
        throw std::runtime_error(fmt::format("{}: flush failed: {}", tmp_, std::strerror(errno)));
    std::fclose(f_);
    f_ = nullptr;
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
        throw std::runtime_error(fmt::format("{}: rename failed: {}", path_, std::strerror(errno)));
}

void write_text_atomic(const std::string& path, const std::string& text) {
    AtomicFile f(path);
    f.write(text.data(), text.size());
    f.commit();
}

void sync_dir(const std::string& dir) {
    const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

}  // namespace rkv

#include "src/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace rkv {

std::string host_name() {
    char name[256] = {};
    return ::gethostname(name, sizeof(name) - 1) == 0 && name[0] ? name : "unknown";
}

// The temporary's name is unique, so that several processes (ranks, on one machine or
// several sharing a file system) may write the same file: NAME.tmp.<host>.<pid>.<hex>.
AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(fmt::format("{}.tmp.{}.{}.{:x}", path, host_name(), ::getpid(), std::random_device{}())) {
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

void remove_stale_temporaries(const std::string& dir) {
    const std::regex temporary(R"(.+\.tmp\.(.+)\.([0-9]+)\.[0-9a-f]+)");
    const std::string host = host_name();
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        std::smatch m;
        if (!std::regex_match(name, m, temporary) || m[1].str() != host) continue;  // another machine's: its own
        const long pid = std::stol(m[2].str());
        if (pid > 0 && pid != ::getpid() && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH)
            std::filesystem::remove(e.path(), ec);
    }
}

namespace {

std::string file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

}  // namespace

int open_regular_file(const std::string& path) {
    // O_NONBLOCK: opening a FIFO does not wait for a writer; fstat then refuses it.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::runtime_error(fmt::format("{}: cannot stat: {}", path, std::strerror(err)));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw std::runtime_error(fmt::format("{}: is {}, not a regular file", path, file_kind(st.st_mode)));
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

void check_regular_file(const std::string& path) { ::close(open_regular_file(path)); }

nlohmann::json read_json_file(const std::string& path) {
    const int fd = open_regular_file(path);
    std::string text;
    char buf[1 << 16];
    ssize_t got;
    while ((got = ::read(fd, buf, sizeof(buf))) > 0) text.append(buf, size_t(got));
    const int err = errno;
    ::close(fd);
    if (got < 0) throw std::runtime_error(fmt::format("{}: cannot read: {}", path, std::strerror(err)));
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
    }
}

void sync_dir(const std::string& dir) {
    const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

}  // namespace rkv

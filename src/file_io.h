// Files that appear whole or not at all: written under a temporary name, flushed to
// disk, then renamed over the real one.
#pragma once
#include <cstdio>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace rkv {

class AtomicFile {
public:
    explicit AtomicFile(const std::string& path);
    ~AtomicFile();  // not committed: the temporary is removed
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, size_t bytes);
    void commit();  // fsync, close, rename onto path

private:
    std::string path_, tmp_;
    FILE* f_;
};

void write_text_atomic(const std::string& path, const std::string& text);
// Removes the temporaries (NAME.tmp.<host>.<pid>.<hex>) in dir that a writer killed before
// its commit left behind: this machine's whose process no longer runs.
void remove_stale_temporaries(const std::string& dir);

// Opens a file for reading, refusing by name anything but a regular file (a FIFO would block,
// a directory reads as an error): returns the descriptor. Throws std::runtime_error.
int open_regular_file(const std::string& path);
// The same check without keeping the file open, for readers that open it themselves.
void check_regular_file(const std::string& path);
// A JSON file, refused by name when it is not a regular file or not JSON. Throws
// std::runtime_error.
nlohmann::json read_json_file(const std::string& path);
// This machine's name (gethostname), "unknown" without one.
std::string host_name();
// fsync a directory, so that renames inside it survive a crash.
void sync_dir(const std::string& dir);

}  // namespace rkv

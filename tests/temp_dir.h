// A fresh directory under the system's temporary directory for one test, removed with
// everything in it when the test is done.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

namespace rkv::test {

struct TempDir {
    std::filesystem::path path;

    explicit TempDir(const std::string& name) {
        static int count = 0;
        path = std::filesystem::temp_directory_path() / fmt::format("rkv_test_{}_{}_{}", name, ::getpid(), count++);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string file(const std::string& name) const { return (path / name).string(); }
    // Writes text to the file `name` in it; returns its path.
    std::string write(const std::string& name, const std::string& text) const {
        std::ofstream(file(name), std::ios::binary) << text;
        return file(name);
    }
};

}  // namespace rkv::test

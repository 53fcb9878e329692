// MappedFile: open, stat, mmap; the mapping outlives the descriptor.
#include "data/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "data/shard.h"
#include "src/file_io.h"

namespace rkv {

MappedFile::MappedFile(const std::string& path) : path_(path), map_(nullptr, Unmap{0}) {
    int fd;
    try {
        fd = open_regular_file(path);  // a FIFO or a directory is refused by name
    } catch (const std::runtime_error& e) {
        throw DataError(e.what());
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        data_fail(path, "cannot stat: {}", std::strerror(err));
    }
    bytes_ = st.st_size;
    if (bytes_ == 0) {  // mmap refuses a length of 0
        ::close(fd);
        return;
    }
    void* p = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_err = errno;
    ::close(fd);
    if (p == MAP_FAILED) data_fail(path, "cannot map: {}", std::strerror(map_err));
    map_ = {static_cast<const char*>(p), Unmap{size_t(bytes_)}};
}

void MappedFile::Unmap::operator()(const char* p) const { ::munmap(const_cast<char*>(p), bytes); }

}  // namespace rkv

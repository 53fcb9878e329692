#include "dist/comm.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if RKV_DIST_CUDA
#include "dist/device_copy.h"
#endif
#if RKV_DIST_MPI
#include "dist/mpi_comm.h"
#endif
#if RKV_DIST_NCCL
#include "dist/nccl_comm.h"
#endif

namespace rkv {

void LocalComm::host_copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }

void LocalComm::reduce_sum(float*, size_t, int root) {
    if (root != 0) throw std::invalid_argument("reduce to rank " + std::to_string(root) + " in a world of 1");
}

void LocalComm::reduce_scatter_sum(const float* send, float* recv, size_t recv_count) {
    if (send != recv) copy_(recv, send, recv_count * sizeof(float));
}

void LocalComm::all_gather_bytes(const void* send, void* recv, size_t send_bytes) {
    if (send != recv) copy_(recv, send, send_bytes);
}

void LocalComm::broadcast(void*, size_t, int root) {
    if (root != 0) throw std::invalid_argument("broadcast from rank " + std::to_string(root) + " in a world of 1");
}

void LocalComm::abort(int code, const std::string& message) {
    std::fflush(stdout);
    std::fprintf(stderr, "rank 0: %s\n", message.c_str());
    std::exit(code);
}

int launched_world_size() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
        if (const char* v = std::getenv(name)) return std::atoi(v);
    return 0;
}

namespace {

std::unique_ptr<Comm> local_comm(bool gpu) {
#if RKV_DIST_CUDA
    if (gpu) return std::make_unique<LocalComm>(device_copy);
#endif
    if (gpu)
        throw std::runtime_error(
            "--device cuda: this build has no CUDA path (CMake found no CUDA toolkit, "
            "or RKV_CUDA_PATH=OFF); the CPU path is --device cpu");
    return std::make_unique<LocalComm>();
}

}  // namespace

std::unique_ptr<Comm> make_comm(bool gpu) {
    const int launched = launched_world_size();
    if (launched == 0) return local_comm(gpu);
#if RKV_DIST_MPI
#if RKV_DIST_NCCL
    if (gpu) return std::make_unique<NcclComm>();
#endif
    if (gpu) throw std::runtime_error("launched by mpirun on the CUDA path, but built without NCCL");
    return std::make_unique<MpiComm>();
#else
    if (launched > 1)
        throw std::runtime_error("launched as one of " + std::to_string(launched) +
                                 " ranks, but built without MPI (RKV_MPI=OFF): rebuild with MPI");
    return local_comm(gpu);
#endif
}

}  // namespace rkv

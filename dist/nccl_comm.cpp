#include "dist/nccl_comm.h"

#include <exception>
#include <stdexcept>
#include <string>

#include "cuda/compat.cuh"

namespace rkv {

namespace {

void nccl_check(ncclResult_t r, const char* call, ncclComm_t comm) {
    if (r != ncclSuccess)
        throw std::runtime_error(std::string(call) + ": " + ncclGetErrorString(r) + " (" + ncclGetLastError(comm) +
                                 ")");
}

// Device memory goes to NCCL, host memory to MPI.
bool is_device(const void* p) {
#if defined(RKV_EMU)
    const auto a = emu::allocation_of(p);
    return a && !a->pinned;
#else
    cudaPointerAttributes at{};
    cuda_check(cudaPointerGetAttributes(&at, p));
    return at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged;
#endif
}

bool both_on_device(const void* send, const void* recv, const char* what) {
    const bool d = is_device(send);
    if (d != is_device(recv))
        throw std::invalid_argument(std::string(what) + ": one buffer is device memory and the other host memory");
    return d;
}

}  // namespace

NcclComm::NcclComm(cudaStream_t stream) : stream_(stream) {
    try {
        // One GPU a rank. A launcher that gives every rank a GPU of its own (CUDA_VISIBLE_DEVICES
        // per rank, Slurm's --gpus-per-task=1) leaves one visible, and so does the emulator,
        // whose processes each have their own device.
        int count = 0;
        cuda_check(cudaGetDeviceCount(&count));
        device_ = count == 1 ? 0 : local_rank();
        if (device_ >= count)
            throw std::runtime_error("local rank " + std::to_string(local_rank()) + " on a node with " +
                                     std::to_string(count) + " GPUs: start at most one rank per GPU");
        cuda_check(cudaSetDevice(device_));
        ncclUniqueId id{};
        if (rank() == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId", nullptr);
        mpi_.broadcast(&id, sizeof(id), 0);
        nccl_check(ncclCommInitRank(&nccl_, world(), id, rank()), "ncclCommInitRank (two ranks on one GPU?)", nullptr);
        cuda_check(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
        cuda_check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
        cuda_check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    } catch (const std::exception& e) {
        mpi_.abort(1, std::string("NCCL setup: ") + e.what());
    }
}

NcclComm::~NcclComm() {
    // As MpiComm: unwinding from an exception, leave the communicator to abort() or mpirun.
    if (std::uncaught_exceptions() > 0) return;
    cudaStreamSynchronize(stream_);
    cudaStreamSynchronize(side_);
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(side_);
    ncclCommDestroy(nccl_);
}

void NcclComm::all_reduce_sum(float* data, size_t n) {
    if (is_device(data))
        nccl_check(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, nccl_, stream_), "ncclAllReduce", nccl_);
    else
        mpi_.all_reduce_sum(data, n);
}

void NcclComm::reduce_sum(float* data, size_t n, int root) {
    if (is_device(data))
        nccl_check(ncclReduce(data, data, n, ncclFloat32, ncclSum, root, nccl_, stream_), "ncclReduce", nccl_);
    else
        mpi_.reduce_sum(data, n, root);
}

cudaStream_t NcclComm::side_after_stream() {
    cuda_check(cudaEventRecord(ready_, stream_));
    cuda_check(cudaStreamWaitEvent(side_, ready_, 0));
    return side_;
}

void NcclComm::all_reduce_start(float* data, size_t n) {
    if (!is_device(data)) return mpi_.all_reduce_sum(data, n);
    nccl_check(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, nccl_, side_after_stream()), "ncclAllReduce", nccl_);
}

void NcclComm::reduce_start(float* data, size_t n, int root) {
    if (!is_device(data)) return mpi_.reduce_sum(data, n, root);
    nccl_check(ncclReduce(data, data, n, ncclFloat32, ncclSum, root, nccl_, side_after_stream()), "ncclReduce", nccl_);
}

void NcclComm::finish_started() {
    cuda_check(cudaEventRecord(done_, side_));
    cuda_check(cudaStreamWaitEvent(stream_, done_, 0));
}

void NcclComm::all_reduce_sum(double* data, size_t n) {
    if (is_device(data))
        nccl_check(ncclAllReduce(data, data, n, ncclFloat64, ncclSum, nccl_, stream_), "ncclAllReduce", nccl_);
    else
        mpi_.all_reduce_sum(data, n);
}

void NcclComm::reduce_scatter_sum(const float* send, float* recv, size_t recv_count) {
    if (both_on_device(send, recv, "reduce_scatter_sum"))
        nccl_check(ncclReduceScatter(send, recv, recv_count, ncclFloat32, ncclSum, nccl_, stream_), "ncclReduceScatter",
                   nccl_);
    else
        mpi_.reduce_scatter_sum(send, recv, recv_count);
}

void NcclComm::all_gather_bytes(const void* send, void* recv, size_t send_bytes) {
    if (both_on_device(send, recv, "all_gather"))
        nccl_check(ncclAllGather(send, recv, send_bytes, ncclUint8, nccl_, stream_), "ncclAllGather", nccl_);
    else
        mpi_.all_gather_bytes(send, recv, send_bytes);
}

void NcclComm::broadcast(void* data, size_t bytes, int root) {
    if (is_device(data))
        nccl_check(ncclBroadcast(data, data, bytes, ncclUint8, root, nccl_, stream_), "ncclBroadcast", nccl_);
    else
        mpi_.broadcast(data, bytes, root);
}

void NcclComm::barrier() {
    cuda_check(cudaStreamSynchronize(stream_));
    mpi_.barrier();
}

void NcclComm::abort(int code, const std::string& message) { mpi_.abort(code, message); }

}  // namespace rkv

// NCCL for a single rank: every collective of one rank is a copy from the
// send to the receive buffer (a no-op in place). Several ranks need MPI and
// are refused with ncclInvalidUsage until the distributed work lands.
#include <nccl.h>

#include <cstring>

#include "cuda/emu/runtime.h"

struct ncclComm {
    int device = 0;
};

namespace {

std::size_t type_size(ncclDataType_t t) {
    switch (t) {
        case ncclInt8:
        case ncclUint8: return 1;
        case ncclFloat16:
        case ncclBfloat16: return 2;
        case ncclInt32:
        case ncclUint32:
        case ncclFloat32: return 4;
        case ncclInt64:
        case ncclUint64:
        case ncclFloat64: return 8;
        default: return 0;
    }
}

// One rank's collective: both buffers must be device memory of `count`
// elements, as NCCL requires.
ncclResult_t copy(const void* send, void* recv, std::size_t count, ncclDataType_t t, ncclComm_t comm) {
    if (!comm) return ncclInvalidArgument;
    const std::size_t bytes = count * type_size(t);
    if (type_size(t) == 0) return ncclInvalidArgument;
    if (bytes == 0) return ncclSuccess;
    const auto s = emu::allocation_of(send), r = emu::allocation_of(recv);
    if (!s || !r || !s->contains(send, bytes) || !r->contains(recv, bytes)) return ncclInvalidArgument;
    if (send != recv) std::memmove(recv, send, bytes);
    return ncclSuccess;
}

}  // namespace

ncclResult_t ncclGetVersion(int* version) {
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (!id) return ncclInvalidArgument;
    *id = ncclUniqueId{};
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId, int rank) {
    if (!comm) return ncclInvalidArgument;
    if (nranks != 1) return ncclInvalidUsage;  // several ranks: over MPI, not yet
    if (rank != 0) return ncclInvalidArgument;
    *comm = new ncclComm;
    return ncclSuccess;
}

ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int*) {
    if (!comms) return ncclInvalidArgument;
    if (ndev != 1) return ncclInvalidUsage;
    *comms = new ncclComm;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) { return comm ? ncclSuccess : ncclInvalidArgument; }

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
    if (!comm || !count) return ncclInvalidArgument;
    *count = 1;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
    if (!comm || !rank) return ncclInvalidArgument;
    *rank = 0;
    return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
    if (!comm || !device) return ncclInvalidArgument;
    *device = comm->device;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* error) {
    if (!comm || !error) return ncclInvalidArgument;
    *error = ncclSuccess;
    return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t r) {
    switch (r) {
        case ncclSuccess: return "no error";
        case ncclInvalidArgument: return "invalid argument";
        case ncclInvalidUsage: return "invalid usage (the emulator runs one rank)";
        default: return "internal error";
    }
}

const char* ncclGetLastError(ncclComm_t) { return ""; }

ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t,
                           ncclComm_t comm, cudaStream_t) {
    return copy(send, recv, count, t, comm);
}

ncclResult_t ncclReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t, int root,
                        ncclComm_t comm, cudaStream_t) {
    return root == 0 ? copy(send, recv, count, t, comm) : ncclInvalidArgument;
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recvcount, ncclDataType_t t, ncclRedOp_t,
                               ncclComm_t comm, cudaStream_t) {
    return copy(send, recv, recvcount, t, comm);
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t sendcount, ncclDataType_t t, ncclComm_t comm,
                           cudaStream_t) {
    return copy(send, recv, sendcount, t, comm);
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int root,
                           ncclComm_t comm, cudaStream_t) {
    return root == 0 ? copy(send, recv, count, t, comm) : ncclInvalidArgument;
}

ncclResult_t ncclBcast(void* buff, size_t count, ncclDataType_t t, int root, ncclComm_t comm,
                       cudaStream_t stream) {
    return ncclBroadcast(buff, buff, count, t, root, comm, stream);
}

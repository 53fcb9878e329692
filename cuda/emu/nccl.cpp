// NCCL on the CPU. The emulator's device memory is host memory, so a collective is plain
// host work on the buffers NCCL would reach on the GPU, after the check NCCL cannot make:
// that each buffer lies inside one device allocation of the size the call implies.
//
// One rank: every collective is a copy from the send to the receive buffer (nothing when in
// place), whatever the operation, and no MPI is involved. Several ranks (a build with
// RKV_EMU_NCCL_MPI, every process of `mpirun -np N` one rank): the collectives go over MPI
// through dist/mpi_collectives.h, whose sums are in rank order and so bitwise the same on
// every rank and in every run, as MpiComm's are. What several ranks support: sums of float,
// double and the integer types; a communicator spanning MPI_COMM_WORLD (the caller has
// started MPI, which it needs anyway to broadcast the unique id). Streams are synchronous
// here, so a collective has finished when it returns.
#include <nccl.h>

#include <cstring>
#include <random>
#include <string>

#include "cuda/emu/runtime.h"

#if RKV_EMU_NCCL_MPI
#include "dist/mpi_collectives.h"
#endif

struct ncclComm {
    int device = 0;
    int rank = 0;
    int nranks = 1;
#if RKV_EMU_NCCL_MPI
    MPI_Comm mpi = MPI_COMM_NULL;  // the ranks in NCCL's order; null for one rank
#endif
};

namespace {

// What ncclGetLastError returns: why the last call failed.
thread_local std::string last_error;

ncclResult_t fail(ncclResult_t r, std::string why) {
    last_error = std::move(why);
    return r;
}

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

// NCCL requires device memory: `bytes` of it from p.
bool in_device_memory(const void* p, std::size_t bytes) {
    if (bytes == 0) return true;
    const auto a = emu::allocation_of(p);
    return a && a->contains(p, bytes);
}

// The checks every collective starts with: a communicator, a known type, buffers of the
// sizes the call implies (send_count and recv_count elements; a null send is not read).
ncclResult_t check(ncclComm_t comm, ncclDataType_t t, const void* send, std::size_t send_count, const void* recv,
                   std::size_t recv_count) {
    if (!comm) return fail(ncclInvalidArgument, "null communicator");
    const std::size_t size = type_size(t);
    if (size == 0) return fail(ncclInvalidArgument, "unknown data type");
    if (send && !in_device_memory(send, send_count * size))
        return fail(ncclInvalidArgument,
                    "the send buffer is not device memory of " + std::to_string(send_count) + " elements");
    if (!in_device_memory(recv, recv_count * size))
        return fail(ncclInvalidArgument,
                    "the receive buffer is not device memory of " + std::to_string(recv_count) + " elements");
    return ncclSuccess;
}

void copy(const void* send, void* recv, std::size_t count, ncclDataType_t t) {
    if (send != recv && count > 0) std::memmove(recv, send, count * type_size(t));
}

#if RKV_EMU_NCCL_MPI

// Calls f(V{}) with the C++ type of t, for the types a sum over ranks supports.
template <class F>
ncclResult_t with_sum_type(ncclDataType_t t, ncclRedOp_t op, F&& f) {
    if (op != ncclSum) return fail(ncclInvalidUsage, "the emulator reduces over several ranks with ncclSum only");
    switch (t) {
        case ncclInt8: f(int8_t{}); break;
        case ncclUint8: f(uint8_t{}); break;
        case ncclInt32: f(int32_t{}); break;
        case ncclUint32: f(uint32_t{}); break;
        case ncclInt64: f(int64_t{}); break;
        case ncclUint64: f(uint64_t{}); break;
        case ncclFloat32: f(float{}); break;
        case ncclFloat64: f(double{}); break;
        default: return fail(ncclInvalidUsage, "the emulator sums float, double and integers over several ranks");
    }
    return ncclSuccess;
}

// A communicator over every process of MPI_COMM_WORLD, ordered by NCCL rank. Every rank
// learns whether all agree on the unique id and hold distinct ranks, so a mistake fails
// on every rank together instead of leaving some waiting.
ncclResult_t init_over_mpi(ncclComm* c, const ncclUniqueId& id) {
    int running = 0, world = 0;
    MPI_Initialized(&running);
    if (!running)
        return fail(ncclInvalidUsage,
                    "several ranks go over MPI, and MPI is not running (start it, as the unique "
                    "id's broadcast needs it anyway)");
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world != c->nranks)
        return fail(ncclInvalidUsage, "the emulator's communicators span MPI_COMM_WORLD (" + std::to_string(world) +
                                          " processes), not " + std::to_string(c->nranks) + " ranks");
    MPI_Comm_split(MPI_COMM_WORLD, 0, c->rank, &c->mpi);
    int mpi_rank = 0;
    MPI_Comm_rank(c->mpi, &mpi_rank);
    ncclUniqueId root_id = id;
    MPI_Bcast(&root_id, sizeof(root_id), MPI_BYTE, 0, c->mpi);
    int ok = mpi_rank == c->rank && std::memcmp(&root_id, &id, sizeof(id)) == 0;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_LAND, c->mpi);
    if (!ok) {
        MPI_Comm_free(&c->mpi);
        return fail(ncclInvalidUsage,
                    "the ranks disagree on the unique id (was it broadcast?) or two of them "
                    "have the same rank");
    }
    return ncclSuccess;
}

#endif  // RKV_EMU_NCCL_MPI

}  // namespace

ncclResult_t ncclGetVersion(int* version) {
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

// Random, so that ranks given different ids (a forgotten broadcast) are told so.
ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    if (!id) return ncclInvalidArgument;
    std::random_device device;
    for (char& byte : id->internal) byte = char(device());
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    if (!comm) return fail(ncclInvalidArgument, "null communicator");
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return fail(ncclInvalidArgument, "rank " + std::to_string(rank) + " of " + std::to_string(nranks));
    auto* c = new ncclComm;
    cudaGetDevice(&c->device);
    c->rank = rank;
    c->nranks = nranks;
    if (nranks > 1) {
#if RKV_EMU_NCCL_MPI
        if (const ncclResult_t r = init_over_mpi(c, id); r != ncclSuccess) {
            delete c;
            return r;
        }
#else
        delete c;
        return fail(ncclInvalidUsage, "this emulator is built without MPI: one rank only");
#endif
    }
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int*) {
    if (!comms) return ncclInvalidArgument;
    if (ndev != 1) return fail(ncclInvalidUsage, "the emulator has one device a process");
    *comms = new ncclComm;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
#if RKV_EMU_NCCL_MPI
    if (comm && comm->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->mpi);
#endif
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) { return comm ? ncclSuccess : ncclInvalidArgument; }

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
    if (!comm || !count) return ncclInvalidArgument;
    *count = comm->nranks;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
    if (!comm || !rank) return ncclInvalidArgument;
    *rank = comm->rank;
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
        case ncclInvalidUsage: return "invalid usage";
        default: return "internal error";
    }
}

const char* ncclGetLastError(ncclComm_t) { return last_error.c_str(); }

ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t) {
    if (const ncclResult_t r = check(comm, t, send, count, recv, count); r != ncclSuccess) return r;
    if (comm->nranks == 1) {
        copy(send, recv, count, t);
        return ncclSuccess;
    }
#if RKV_EMU_NCCL_MPI
    return with_sum_type(t, op, [&](auto zero) {
        copy(send, recv, count, t);
        rkv::mpi::all_reduce_sum(static_cast<decltype(zero)*>(recv), count, comm->mpi);
    });
#else
    return ncclSuccess;  // unreached: without MPI every communicator has one rank
#endif
}

ncclResult_t ncclReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op, int root,
                        ncclComm_t comm, cudaStream_t) {
    if (!comm || root < 0 || root >= comm->nranks) return fail(ncclInvalidArgument, "bad communicator or root");
    const bool is_root = comm->rank == root;
    if (const ncclResult_t r = check(comm, t, send, count, is_root ? recv : nullptr, is_root ? count : 0);
        r != ncclSuccess)
        return r;
    if (comm->nranks == 1) {
        copy(send, recv, count, t);
        return ncclSuccess;
    }
#if RKV_EMU_NCCL_MPI
    return with_sum_type(t, op, [&](auto zero) {
        using V = decltype(zero);
        rkv::mpi::reduce_sum(static_cast<const V*>(send), static_cast<V*>(recv), count, root, comm->mpi);
    });
#else
    return ncclSuccess;  // unreached: without MPI every communicator has one rank
#endif
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recvcount, ncclDataType_t t, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t) {
    if (!comm) return fail(ncclInvalidArgument, "null communicator");
    if (const ncclResult_t r = check(comm, t, send, comm->nranks * recvcount, recv, recvcount); r != ncclSuccess)
        return r;
    if (comm->nranks == 1) {
        copy(send, recv, recvcount, t);
        return ncclSuccess;
    }
#if RKV_EMU_NCCL_MPI
    return with_sum_type(t, op, [&](auto zero) {
        using V = decltype(zero);
        rkv::mpi::reduce_scatter_sum(static_cast<const V*>(send), static_cast<V*>(recv), recvcount, comm->mpi);
    });
#else
    return ncclSuccess;  // unreached: without MPI every communicator has one rank
#endif
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t sendcount, ncclDataType_t t, ncclComm_t comm,
                           cudaStream_t) {
    if (!comm) return fail(ncclInvalidArgument, "null communicator");
    if (const ncclResult_t r = check(comm, t, send, sendcount, recv, comm->nranks * sendcount); r != ncclSuccess)
        return r;
    if (comm->nranks == 1) {
        copy(send, recv, sendcount, t);
        return ncclSuccess;
    }
#if RKV_EMU_NCCL_MPI
    rkv::mpi::all_gather(send, recv, sendcount * type_size(t), comm->mpi);
#endif
    return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int root, ncclComm_t comm,
                           cudaStream_t) {
    if (!comm || root < 0 || root >= comm->nranks) return fail(ncclInvalidArgument, "bad communicator or root");
    // Only the root's send buffer is read.
    const bool is_root = comm->rank == root;
    if (const ncclResult_t r = check(comm, t, is_root ? send : nullptr, count, recv, count); r != ncclSuccess) return r;
    if (is_root) copy(send, recv, count, t);
#if RKV_EMU_NCCL_MPI
    if (comm->nranks > 1) rkv::mpi::broadcast(recv, count * type_size(t), root, comm->mpi);
#endif
    return ncclSuccess;
}

ncclResult_t ncclBcast(void* buff, size_t count, ncclDataType_t t, int root, ncclComm_t comm, cudaStream_t stream) {
    return ncclBroadcast(buff, buff, count, t, root, comm, stream);
}

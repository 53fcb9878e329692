// Collectives over MPI on host memory, with sums that are deterministic: MpiComm uses them,
// and so does the emulator's NCCL (cuda/emu/nccl.cpp), so the CPU path and the emulated GPU
// path reduce to bitwise the same numbers.
//
// Why not MPI_Allreduce: the MPI standard only recommends that a reduction give the same
// result for the same inputs; it does not promise that every rank of an all-reduce gets the
// same bits, and Open MPI picks its algorithm (and with it the order of the additions) by
// message size and process count. Instead, every element here is summed in rank order,
//     ((x_0 + x_1) + x_2) + ... + x_{W-1},
// once, by the rank that owns that element's slice, and the sums are then copied to the
// others. The result is the same on every rank, in every run, whatever the timing, however
// the caller splits its buffers into calls, and all-reduce, reduce and reduce-scatter agree on
// every element (so ZeRO-1, ZeRO-2 and plain data parallelism sum the same gradients alike).
//
// Counts may exceed MPI's int: the work goes in pieces. Errors abort the job (MPI's default
// error handler, MPI_ERRORS_ARE_FATAL), so none of these returns a status.
#pragma once

#include <mpi.h>

#include <cstddef>

namespace rkv::mpi {

// data (n) = the sum over the ranks of comm of data (n). E: float, double, int8_t, uint8_t,
// int32_t, uint32_t, int64_t, uint64_t.
template <class E>
void all_reduce_sum(E* data, size_t n, MPI_Comm comm);

// On root: recv (n) = the sum over the ranks of comm of send (n), each element the sum
// all_reduce_sum gives it; recv is not touched elsewhere. recv may be send (in place).
template <class E>
void reduce_sum(const E* send, E* recv, size_t n, int root, MPI_Comm comm);

// recv (recv_count) = the sum over ranks of send[rank * recv_count, (rank + 1) * recv_count).
// recv may be that slice of send (in place).
template <class E>
void reduce_scatter_sum(const E* send, E* recv, size_t recv_count, MPI_Comm comm);

// recv (world * bytes) = every rank's send (bytes), in rank order. send may be recv's slice
// of this rank, recv + rank * bytes (in place).
void all_gather(const void* send, void* recv, size_t bytes, MPI_Comm comm);

// data (bytes) = root's data.
void broadcast(void* data, size_t bytes, int root, MPI_Comm comm);

// MPI_Init_thread unless MPI is running already (funneled: only the main thread calls MPI).
// Returns whether this call started it, i.e. whether the caller should finalize it.
bool init();

}  // namespace rkv::mpi

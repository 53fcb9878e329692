// The trainer's view of the other ranks (DESIGN.md section 4): who am I, how many are
// we, and the six collectives data parallelism and ZeRO-1/2 need. One interface, three ways:
//
//   LocalComm  one process, not launched by mpirun: world 1, every collective a copy or nothing.
//   MpiComm    the CPU path: MPI on host memory (dist/mpi_comm.h).
//   NcclComm   the GPU path: NCCL on device memory, one GPU per local rank (dist/nccl_comm.h);
//              host memory (the loss, the gradient norm) goes over MPI.
//
// Memory: buffers are where the path keeps them: host memory on the CPU path; device memory
// (or host memory, for scalars) on the CUDA path, where make_comm(true) gives NcclComm or a
// LocalComm that copies with cudaMemcpy. NcclComm enqueues device-memory collectives on its
// stream like kernels (see nccl_comm.h); everything else is done when the call returns.
//
// Determinism: over MPI (MpiComm, NcclComm's host memory, the emulator's NCCL) every element
// is summed in rank order by one rank and copied to the others, so every rank gets bitwise
// the same result, in every run, whatever the timing and however the caller cuts its buffers
// into calls; all-reduce, reduce and reduce-scatter agree bitwise (dist/mpi_collectives.h).
// On a GPU, NCCL also reduces each element once and copies it, so ranks agree; its order of
// additions is its own (fixed for a given size and topology; NCCL_ALGO=Ring pins the algorithm).
//
// Errors: a failing rank must take the whole job down with its own message, never leave the
// others waiting in a collective. The trainer creates the Comm in main() before its try block
// and, in the top-level catch, calls  comm->abort(1, e.what());  which does not return.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace rkv {

class Comm {
public:
    virtual ~Comm() = default;

    virtual int rank() const = 0;
    virtual int world() const = 0;
    // The rank among the processes of this node: NcclComm's GPU.
    virtual int local_rank() const = 0;

    // data (n) = the sum over ranks of data (n), in place, identical on every rank.
    virtual void all_reduce_sum(float* data, size_t n) = 0;
    virtual void all_reduce_sum(double* data, size_t n) = 0;
    // On root: data (n) = the sum over ranks of data (n), each element the sum all_reduce_sum
    // gives it; the other ranks' data is left as it was.
    virtual void reduce_sum(float* data, size_t n, int root) = 0;
    // all_reduce_sum and reduce_sum, started now and overlapping what the caller enqueues
    // next (the backward of the layers below); the sums are complete once finish_started()
    // has returned (on the GPU: for the work the caller enqueues after it). By default, done
    // at once.
    virtual void all_reduce_start(float* data, size_t n) { all_reduce_sum(data, n); }
    virtual void reduce_start(float* data, size_t n, int root) { reduce_sum(data, n, root); }
    virtual void finish_started() {}
    // recv (recv_count) = the sum over ranks of this rank's slice of send (world * recv_count),
    // send[rank * recv_count, (rank + 1) * recv_count). Each element is the same sum
    // all_reduce_sum gives it. In place when recv == send + rank * recv_count.
    virtual void reduce_scatter_sum(const float* send, float* recv, size_t recv_count) = 0;
    // recv (world * send_count) = every rank's send (send_count), in rank order.
    // In place when send == recv + rank * send_count. Any element type: a gather only copies.
    template <class E>
    void all_gather(const E* send, E* recv, size_t send_count) {
        all_gather_bytes(send, recv, send_count * sizeof(E));
    }
    virtual void all_gather_bytes(const void* send, void* recv, size_t send_bytes) = 0;
    // data (bytes) = root's data.
    virtual void broadcast(void* data, size_t bytes, int root) = 0;
    virtual void barrier() = 0;

    // Stops every rank: prints "rank R: message" to stderr and ends the job with `code`
    // (MPI_Abort). Never returns and never waits for the other ranks.
    [[noreturn]] virtual void abort(int code, const std::string& message) = 0;
};

// One process alone. Its reduce-scatter and all-gather are copies (nothing when in place),
// made by `copy`: memmove for host memory; on the CUDA path make_comm passes device_copy
// (dist/device_copy.h), a cudaMemcpy, as the buffers are device memory. abort() prints the
// message and exits with `code`.
class LocalComm final : public Comm {
public:
    using Copy = void (*)(void* dst, const void* src, size_t bytes);
    explicit LocalComm(Copy copy = host_copy) : copy_(copy) {}
    int rank() const override { return 0; }
    int world() const override { return 1; }
    int local_rank() const override { return 0; }
    void all_reduce_sum(float*, size_t) override {}
    void all_reduce_sum(double*, size_t) override {}
    void reduce_sum(float*, size_t, int root) override;
    void reduce_scatter_sum(const float* send, float* recv, size_t recv_count) override;
    void all_gather_bytes(const void* send, void* recv, size_t send_bytes) override;
    void broadcast(void*, size_t, int root) override;
    void barrier() override {}
    [[noreturn]] void abort(int code, const std::string& message) override;

    static void host_copy(void* dst, const void* src, size_t bytes);

private:
    Copy copy_;
};

// The number of processes the launcher started (mpirun: OMPI_COMM_WORLD_SIZE; MPICH, Slurm's
// PMI: PMI_SIZE), or 0 when the program was started on its own.
int launched_world_size();

// LocalComm when the program was not launched by an MPI launcher; otherwise NcclComm when
// `gpu` (the CUDA path) and MpiComm when not. Throws if launched with several ranks in a
// build without MPI (RKV_MPI=OFF) or, for `gpu`, without the CUDA path.
std::unique_ptr<Comm> make_comm(bool gpu);

}  // namespace rkv

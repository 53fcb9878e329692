// Comm for the GPU path (dist/comm.h): NCCL on device memory, one GPU a rank. Under the
// emulator (cuda/emu) the same code runs on the CPU, its NCCL going over MPI.
#pragma once

#include <nccl.h>

#include "dist/mpi_comm.h"

namespace rkv {

class NcclComm final : public Comm {
public:
    // Starts MPI unless it runs already, takes the GPU of this local rank and builds an NCCL
    // communicator over every rank, its unique id broadcast over MPI. A failure here (too
    // few GPUs, NCCL refusing) aborts the job with this rank's message: the other ranks are
    // waiting in the same setup.
    //
    // Collectives on device memory are enqueued on `stream`, by default the legacy default
    // stream on which CudaOps runs the layers: like a kernel, they are ordered after the work
    // before them and return before they finish. Host memory (the loss, a gradient norm)
    // goes over MPI, with its deterministic sums, and is done on return.
    explicit NcclComm(cudaStream_t stream = nullptr);
    ~NcclComm() override;
    NcclComm(const NcclComm&) = delete;
    NcclComm& operator=(const NcclComm&) = delete;

    int rank() const override { return mpi_.rank(); }
    int world() const override { return mpi_.world(); }
    int local_rank() const override { return mpi_.local_rank(); }
    void all_reduce_sum(float* data, size_t n) override;
    void all_reduce_sum(double* data, size_t n) override;
    void reduce_sum(float* data, size_t n, int root) override;
    // On device memory: NCCL on a side stream, after the work enqueued so far on `stream`,
    // while `stream` goes on; finish_started makes `stream` wait for the side stream.
    void all_reduce_start(float* data, size_t n) override;
    void reduce_start(float* data, size_t n, int root) override;
    void finish_started() override;
    void reduce_scatter_sum(const float* send, float* recv, size_t recv_count) override;
    void all_gather_bytes(const void* send, void* recv, size_t send_bytes) override;
    void broadcast(void* data, size_t bytes, int root) override;
    // Waits for this rank's stream, then for every rank.
    void barrier() override;
    [[noreturn]] void abort(int code, const std::string& message) override;

    int device() const { return device_; }

private:
    MpiComm mpi_;  // first: it outlives the NCCL communicator
    ncclComm_t nccl_ = nullptr;
    cudaStream_t stream_;
    cudaStream_t side_ = nullptr;  // non-blocking: it runs beside the legacy stream
    cudaEvent_t ready_ = nullptr, done_ = nullptr;
    int device_ = 0;

    cudaStream_t side_after_stream();  // the side stream, made to wait for the work on `stream`
};

}  // namespace rkv

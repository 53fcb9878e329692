// Comm over MPI on host memory: the CPU path's data parallelism (dist/comm.h).
#pragma once

#include <mpi.h>

#include "dist/comm.h"

namespace rkv {

class MpiComm final : public Comm {
public:
    // Starts MPI unless it runs already (then whoever started it also finalizes it).
    MpiComm();
    ~MpiComm() override;
    MpiComm(const MpiComm&) = delete;
    MpiComm& operator=(const MpiComm&) = delete;

    int rank() const override { return rank_; }
    int world() const override { return world_; }
    int local_rank() const override { return local_rank_; }
    void all_reduce_sum(float* data, size_t n) override;
    void all_reduce_sum(double* data, size_t n) override;
    void reduce_sum(float* data, size_t n, int root) override;
    void reduce_scatter_sum(const float* send, float* recv, size_t recv_count) override;
    void all_gather_bytes(const void* send, void* recv, size_t send_bytes) override;
    void broadcast(void* data, size_t bytes, int root) override;
    void barrier() override;
    [[noreturn]] void abort(int code, const std::string& message) override;

    MPI_Comm comm() const { return comm_; }

private:
    bool owns_mpi_;
    MPI_Comm comm_ = MPI_COMM_NULL;  // a duplicate of MPI_COMM_WORLD: our messages stay ours
    int rank_ = 0, world_ = 1, local_rank_ = 0;
};

}  // namespace rkv

#include "dist/mpi_comm.h"

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "dist/mpi_collectives.h"

namespace rkv {

MpiComm::MpiComm() : owns_mpi_(mpi::init()) {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &world_);
    // The local rank is the rank among the processes that share this node's memory: it comes
    // from MPI itself, so it is right under any launcher (mpirun, srun, a hostfile).
    MPI_Comm node;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_free(&node);
}

MpiComm::~MpiComm() {
    // Unwinding from an exception, the other ranks may be waiting in a collective, and
    // MPI_Finalize would wait for them: leave MPI running, so that abort() (or mpirun, when
    // this process exits without finalizing) ends the job instead of a hang.
    if (std::uncaught_exceptions() > 0) return;
    MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
}

void MpiComm::all_reduce_sum(float* data, size_t n) { mpi::all_reduce_sum(data, n, comm_); }
void MpiComm::all_reduce_sum(double* data, size_t n) { mpi::all_reduce_sum(data, n, comm_); }

void MpiComm::reduce_sum(float* data, size_t n, int root) { mpi::reduce_sum(data, data, n, root, comm_); }

void MpiComm::reduce_scatter_sum(const float* send, float* recv, size_t recv_count) {
    mpi::reduce_scatter_sum(send, recv, recv_count, comm_);
}

void MpiComm::all_gather_bytes(const void* send, void* recv, size_t send_bytes) {
    mpi::all_gather(send, recv, send_bytes, comm_);
}

void MpiComm::broadcast(void* data, size_t bytes, int root) { mpi::broadcast(data, bytes, root, comm_); }

void MpiComm::barrier() { MPI_Barrier(comm_); }

void MpiComm::abort(int code, const std::string& message) {
    std::fflush(stdout);
    std::fprintf(stderr, "rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    // On MPI_COMM_WORLD: every process of the job goes, not only those of comm_.
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this says so to the compiler
}

}  // namespace rkv

// A job in which one rank fails: run as  mpirun -np 2 dist_abort mpi|nccl R.  Rank R throws
// before the first collective while the others wait in it; the top-level catch calls
// Comm::abort, as the trainer's does, which must end every rank with rank R's message and a
// non-zero exit (tests/dist/test_abort.py checks it, with a timeout against a hang).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "dist/comm.h"

int main(int argc, char** argv) {
    const std::string mode = argc == 3 ? argv[1] : "";
    if (mode != "mpi" && mode != "nccl") {
        std::fprintf(stderr, "usage: dist_abort mpi|nccl failing_rank (under mpirun)\n");
        return 2;
    }
    const int failing = std::atoi(argv[2]);
    std::unique_ptr<rkv::Comm> comm = rkv::make_comm(mode == "nccl");
    try {
        if (comm->rank() == failing) throw std::runtime_error("bad shard on purpose");
        double loss = 1;
        comm->all_reduce_sum(&loss, 1);  // never completes: rank `failing` is not coming
        comm->barrier();
        std::printf("rank %d: passed the collective the failed rank never joined\n", comm->rank());
        return 0;
    } catch (const std::exception& e) {
        comm->abort(3, e.what());
    }
}

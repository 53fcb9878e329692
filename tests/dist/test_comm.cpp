// Every collective of a Comm (dist/comm.h) against sums computed here, on random values
// seeded per rank: every rank can draw every rank's values, so each computes every result.
//
//   dist_tests local                  one process: LocalComm, on host and (CUDA path) device memory
//   mpirun -np 2 dist_tests mpi       MpiComm on host memory
//   mpirun -np 2 dist_tests nccl      NcclComm: device memory through NCCL (the emulator's, over
//                                     MPI), host memory through MPI
//
// Sums over MPI and the emulator's NCCL must equal the rank-order sum bitwise; a real GPU's
// NCCL adds in its own order, and is held to a relative 1e-6. Every result must be bitwise
// the same on every rank. Rank 0 prints "N passed, M failed"; every rank exits 1 if any check
// failed anywhere.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "dist/comm.h"
#if RKV_DIST_MPI
#include "dist/mpi_comm.h"
#endif
#if RKV_DIST_CUDA
#include "cuda/compat.cuh"
#endif
#if RKV_DIST_NCCL
#include "dist/nccl_comm.h"
#endif

namespace {

using rkv::Comm;

int passed = 0, failed = 0;
int my_rank = 0;

void expect(bool ok, const std::string& what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        std::fprintf(stderr, "rank %d: FAILED %s\n", my_rank, what.c_str());
    }
}

// The sizes the collectives run on: empty, odd, and past dist/mpi_collectives.cpp's piece
// (2^24 elements a call), so large buffers go in several MPI calls.
constexpr size_t kLarge = (size_t(1) << 24) + 5;

// Rank q's values for the test tagged `tag`: the same wherever they are drawn.
template <class E>
std::vector<E> values(int q, uint64_t tag, size_t n) {
    std::mt19937_64 gen(tag * 1000003 + uint64_t(q));
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<E> v(n);
    for (E& x : v) x = E(u(gen));
    return v;
}

// The sum of every rank's values at [off, off + n), added in rank order.
template <class E>
std::vector<E> rank_order_sum(int world, uint64_t tag, size_t total, size_t off, size_t n) {
    std::vector<E> sum(n, E(0));
    for (int q = 0; q < world; q++) {
        const std::vector<E> v = values<E>(q, tag, total);
        for (size_t i = 0; i < n; i++) sum[i] = q == 0 ? v[off + i] : sum[i] + v[off + i];
    }
    return sum;
}

// got == want bitwise when `exact`, else within a relative 1e-6 (a GPU's NCCL).
template <class E>
bool matches(const std::vector<E>& got, const std::vector<E>& want, bool exact) {
    if (got.size() != want.size()) return false;
    if (exact) return std::memcmp(got.data(), want.data(), got.size() * sizeof(E)) == 0;
    double err = 0, norm = 0;
    for (size_t i = 0; i < got.size(); i++) {
        err += (double(got[i]) - double(want[i])) * (double(got[i]) - double(want[i]));
        norm += double(want[i]) * double(want[i]);
    }
    return std::sqrt(err) <= 1e-6 * std::sqrt(norm);
}

// Whether v is bitwise the same on every rank: its hash (FNV-1a) against every other's,
// gathered over MPI itself rather than the Comm under test.
template <class E>
bool same_on_every_rank(const std::vector<E>& v, int world) {
    uint64_t h = 1469598103934665603ull;
    const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
    for (size_t i = 0; i < v.size() * sizeof(E); i++) h = (h ^ bytes[i]) * 1099511628211ull;
    if (world == 1) return true;
#if RKV_DIST_MPI
    std::vector<uint64_t> all(world);
    MPI_Allgather(&h, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (uint64_t x : all)
        if (x != h) return false;
#endif
    return true;
}

// A buffer in the memory the Comm works on: host memory, or device memory for NCCL.
template <class E>
class Buffer {
public:
    Buffer(size_t n, bool device) : n_(n), device_(device) {
#if RKV_DIST_CUDA
        if (device_) {
            rkv::cuda_check(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(E)));
            return;
        }
#endif
        host_.resize(n);
        p_ = host_.data();
    }
    ~Buffer() {
#if RKV_DIST_CUDA
        if (device_) cudaFree(p_);
#endif
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    E* data() { return p_; }
    void set(const std::vector<E>& v) { copy(p_, v.data(), v.size()); }
    std::vector<E> get(size_t off, size_t n) const {
        std::vector<E> v(n);
        copy(v.data(), p_ + off, n);
        return v;
    }
    std::vector<E> get() const { return get(0, n_); }

private:
    void copy(E* dst, const E* src, size_t n) const {
        if (n == 0) return;
#if RKV_DIST_CUDA
        // The default stream orders the copy after the collectives enqueued before it.
        if (device_) {
            rkv::cuda_check(cudaMemcpy(dst, src, n * sizeof(E), cudaMemcpyDefault));
            return;
        }
#endif
        std::memcpy(dst, src, n * sizeof(E));
    }

    size_t n_;
    bool device_;
    E* p_ = nullptr;
    std::vector<E> host_;
};

struct Case {
    Comm& comm;
    bool device;  // the buffers are device memory
    bool exact;   // sums are the rank-order sums, bitwise
    std::string name;
    uint64_t tag = 1;  // a fresh seed for every test
};

template <class E>
void test_all_reduce(Case& c, size_t n) {
    const uint64_t tag = c.tag++;
    const int world = c.comm.world(), rank = c.comm.rank();
    Buffer<E> buf(n, c.device);
    buf.set(values<E>(rank, tag, n));
    c.comm.all_reduce_sum(buf.data(), n);
    const std::vector<E> got = buf.get();
    const std::string what =
        c.name + " all_reduce_sum<" + (sizeof(E) == 4 ? "float" : "double") + "> n " + std::to_string(n);
    expect(matches(got, rank_order_sum<E>(world, tag, n, 0, n), c.exact), what);
    expect(same_on_every_rank(got, world), what + ": the same on every rank");
}

// Summing a buffer in two calls gives the bits of one call: the sum of an element does not
// depend on how the caller cuts its buffers (the trainer may reduce layer by layer).
void test_all_reduce_split(Case& c) {
    const uint64_t tag = c.tag++;
    const size_t n = 1001, cut = 500;
    Buffer<float> whole(n, c.device), parts(n, c.device);
    whole.set(values<float>(c.comm.rank(), tag, n));
    parts.set(values<float>(c.comm.rank(), tag, n));
    c.comm.all_reduce_sum(whole.data(), n);
    c.comm.all_reduce_sum(parts.data(), cut);
    c.comm.all_reduce_sum(parts.data() + cut, n - cut);
    expect(matches(whole.get(), parts.get(), true), c.name + " all_reduce_sum in two calls equals one call");
}

// reduce_sum in place, to each root: the root gets the rank-order sum; every other rank's
// buffer is left as it was. `started`: through reduce_start and finish_started, several
// reductions in flight at once (as ZeRO-2 starts them), checked after the finish.
void test_reduce(Case& c, size_t n, bool started) {
    const int world = c.comm.world(), rank = c.comm.rank();
    std::vector<uint64_t> tags;
    std::vector<std::unique_ptr<Buffer<float>>> bufs;
    for (int root = 0; root < world; root++) {
        tags.push_back(c.tag++);
        bufs.push_back(std::make_unique<Buffer<float>>(n, c.device));
        bufs.back()->set(values<float>(rank, tags.back(), n));
        if (started)
            c.comm.reduce_start(bufs.back()->data(), n, root);
        else
            c.comm.reduce_sum(bufs.back()->data(), n, root);
    }
    if (started) c.comm.finish_started();
    for (int root = 0; root < world; root++) {
        const std::vector<float> want =
            root == rank ? rank_order_sum<float>(world, tags[root], n, 0, n) : values<float>(rank, tags[root], n);
        expect(matches(bufs[root]->get(), want, root == rank ? c.exact : true),
               c.name + (started ? " reduce_start" : " reduce_sum") + " n " + std::to_string(n) + " to rank " +
                   std::to_string(root) + (root == rank ? ": the sum" : ": left as it was"));
    }
}

void test_reduce_scatter(Case& c, size_t recv_count, bool in_place) {
    const uint64_t tag = c.tag++;
    const int world = c.comm.world(), rank = c.comm.rank();
    const size_t n = size_t(world) * recv_count;
    Buffer<float> send(n, c.device), recv(in_place ? 0 : recv_count, c.device);
    send.set(values<float>(rank, tag, n));
    float* out = in_place ? send.data() + size_t(rank) * recv_count : recv.data();
    c.comm.reduce_scatter_sum(send.data(), out, recv_count);
    const std::vector<float> got = in_place ? send.get(size_t(rank) * recv_count, recv_count) : recv.get(0, recv_count);
    const std::string what =
        c.name + " reduce_scatter_sum recv_count " + std::to_string(recv_count) + (in_place ? " in place" : "");
    expect(matches(got, rank_order_sum<float>(world, tag, n, size_t(rank) * recv_count, recv_count), c.exact), what);
}

void test_all_gather(Case& c, size_t send_count, bool in_place) {
    const uint64_t tag = c.tag++;
    const int world = c.comm.world(), rank = c.comm.rank();
    const size_t n = size_t(world) * send_count;
    Buffer<float> send(in_place ? 0 : send_count, c.device), recv(n, c.device);
    const std::vector<float> mine = values<float>(rank, tag, send_count);
    float* in = in_place ? recv.data() + size_t(rank) * send_count : send.data();
    if (in_place) {
        recv.set(std::vector<float>(n, -7.0f));  // what must be overwritten
        std::vector<float> placed = recv.get();
        std::copy(mine.begin(), mine.end(), placed.begin() + ptrdiff_t(size_t(rank) * send_count));
        recv.set(placed);
    } else {
        send.set(mine);
    }
    c.comm.all_gather(in, recv.data(), send_count);
    std::vector<float> want;
    for (int q = 0; q < world; q++) {
        const std::vector<float> v = values<float>(q, tag, send_count);
        want.insert(want.end(), v.begin(), v.end());
    }
    expect(matches(recv.get(), want, true),
           c.name + " all_gather send_count " + std::to_string(send_count) + (in_place ? " in place" : ""));
}

void test_broadcast(Case& c, size_t bytes, int root) {
    const uint64_t tag = c.tag++;
    Buffer<uint8_t> buf(bytes, c.device);
    auto draw = [&](int q) {
        std::vector<uint8_t> v(bytes);
        std::mt19937 gen(uint32_t(tag * 7919 + uint64_t(q)));
        for (uint8_t& b : v) b = uint8_t(gen());
        return v;
    };
    buf.set(draw(c.comm.rank()));
    c.comm.broadcast(buf.data(), bytes, root);
    expect(buf.get() == draw(root),
           c.name + " broadcast " + std::to_string(bytes) + " bytes from rank " + std::to_string(root));
}

void run_all(Case c) {
    for (size_t n : {size_t(0), size_t(1), size_t(5), size_t(1000), size_t(100003), kLarge})
        test_all_reduce<float>(c, n);
    for (size_t n : {size_t(1), size_t(7), size_t(4099)}) test_all_reduce<double>(c, n);
    if (c.exact) test_all_reduce_split(c);
    for (size_t n : {size_t(0), size_t(1), size_t(1000), kLarge})
        for (bool started : {false, true}) test_reduce(c, n, started);
    const size_t large_slice = kLarge / 2;  // past a piece of the per-rank slice, too
    for (size_t count : {size_t(1), size_t(3), size_t(1000), large_slice})
        for (bool in_place : {false, true}) {
            test_reduce_scatter(c, count, in_place);
            test_all_gather(c, count, in_place);
        }
    for (int root = 0; root < c.comm.world(); root++)
        for (size_t bytes : {size_t(1), size_t(13), (size_t(1) << 20) + 3}) test_broadcast(c, bytes, root);
    c.comm.barrier();
    expect(true, c.name + " barrier");
}

#if RKV_DIST_NCCL && defined(RKV_EMU)
// The emulator's NCCL itself, over MPI: what NcclComm does not reach (ncclReduce, separate
// send and receive buffers) and the mistakes it must refuse on every rank together.
void test_emulated_nccl(int rank, int world) {
    ncclUniqueId own;
    ncclGetUniqueId(&own);  // not broadcast: every rank holds a different id
    ncclComm_t bad = nullptr;
    expect(ncclCommInitRank(&bad, world, own, rank) == ncclInvalidUsage, "emu nccl refuses ids never broadcast");
    expect(ncclCommInitRank(&bad, world + 1, own, rank) == ncclInvalidUsage,
           "emu nccl refuses a communicator that is not MPI_COMM_WORLD");

    ncclUniqueId id;
    if (rank == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t comm = nullptr;
    // NCCL ranks in the reverse of MPI's: the communicator follows NCCL's numbering.
    const int nccl_rank = world - 1 - rank;
    expect(ncclCommInitRank(&comm, world, id, nccl_rank) == ncclSuccess, "emu nccl init with reversed ranks");
    int got_rank = -1, count = 0;
    ncclCommUserRank(comm, &got_rank);
    ncclCommCount(comm, &count);
    expect(got_rank == nccl_rank && count == world, "emu nccl rank and count");

    const size_t n = 1000;
    const uint64_t tag = 9001;
    float *send = nullptr, *recv = nullptr;
    rkv::cuda_check(cudaMalloc(reinterpret_cast<void**>(&send), n * sizeof(float)));
    rkv::cuda_check(cudaMalloc(reinterpret_cast<void**>(&recv), n * sizeof(float)));
    const std::vector<float> mine = values<float>(nccl_rank, tag, n);
    rkv::cuda_check(cudaMemcpy(send, mine.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    std::vector<float> got(n);

    expect(ncclAllReduce(send, recv, n, ncclFloat32, ncclSum, comm, nullptr) == ncclSuccess,
           "emu nccl all-reduce out of place");
    rkv::cuda_check(cudaMemcpy(got.data(), recv, n * sizeof(float), cudaMemcpyDeviceToHost));
    expect(matches(got, rank_order_sum<float>(world, tag, n, 0, n), true),
           "emu nccl all-reduce sums in NCCL rank order");

    const int root = world - 1;
    expect(ncclReduce(send, recv, n, ncclFloat32, ncclSum, root, comm, nullptr) == ncclSuccess, "emu nccl reduce");
    if (nccl_rank == root) {
        rkv::cuda_check(cudaMemcpy(got.data(), recv, n * sizeof(float), cudaMemcpyDeviceToHost));
        expect(matches(got, rank_order_sum<float>(world, tag, n, 0, n), true), "emu nccl reduce at the root");
    }

    expect(ncclBroadcast(send, recv, n, ncclFloat32, root, comm, nullptr) == ncclSuccess, "emu nccl broadcast");
    rkv::cuda_check(cudaMemcpy(got.data(), recv, n * sizeof(float), cudaMemcpyDeviceToHost));
    expect(got == values<float>(root, tag, n), "emu nccl broadcast out of place");

    expect(ncclAllReduce(send, recv, n, ncclFloat32, ncclMax, comm, nullptr) == ncclInvalidUsage,
           "emu nccl refuses an operation other than the sum");
    expect(ncclAllReduce(send, recv, n, ncclBfloat16, ncclSum, comm, nullptr) == ncclInvalidUsage,
           "emu nccl refuses a bf16 sum");
    expect(ncclReduceScatter(send, recv, n, ncclFloat32, ncclSum, comm, nullptr) == ncclInvalidArgument,
           "emu nccl refuses a send buffer smaller than world * recvcount");
    expect(ncclAllGather(send, recv, n, ncclFloat32, comm, nullptr) == ncclInvalidArgument,
           "emu nccl refuses a receive buffer smaller than world * sendcount");
    expect(ncclAllReduce(mine.data(), recv, n, ncclFloat32, ncclSum, comm, nullptr) == ncclInvalidArgument,
           "emu nccl refuses host memory");

    cudaFree(send);
    cudaFree(recv);
    expect(ncclCommDestroy(comm) == ncclSuccess, "emu nccl destroy");
}
#endif

void test_identity(Comm& comm, const std::string& name) {
    const int launched = rkv::launched_world_size();
    expect(comm.world() == (launched == 0 ? 1 : launched), name + " world is the launcher's");
    expect(comm.rank() >= 0 && comm.rank() < comm.world(), name + " rank inside the world");
    // mpirun -np 2 in CI starts both ranks on this one node.
    expect(comm.local_rank() == comm.rank(), name + " local rank on one node");
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc == 2 ? argv[1] : "";
    if (mode != "local" && mode != "mpi" && mode != "nccl") {
        std::fprintf(stderr, "usage: dist_tests local | mpi | nccl (mpi and nccl under mpirun)\n");
        return 2;
    }
    if (mode != "local" && rkv::launched_world_size() == 0) {
        std::fprintf(stderr, "dist_tests %s: run it under mpirun\n", mode.c_str());
        return 2;
    }
#if defined(RKV_EMU)
    const bool nccl_exact = true;  // the emulator's NCCL sums as MPI does
#else
    const bool nccl_exact = false;
#endif
    // As in the trainer: the Comm outlives the try block, so that a failure on one rank
    // ends every rank through abort() instead of leaving the others in a collective.
    std::unique_ptr<Comm> comm = rkv::make_comm(mode == "nccl");
    my_rank = comm->rank();
    try {
        test_identity(*comm, mode);
        if (mode == "local") {
            expect(dynamic_cast<rkv::LocalComm*>(comm.get()) != nullptr, "make_comm gives LocalComm alone");
            run_all({*comm, false, true, "local"});
#if RKV_DIST_CUDA
            // The CUDA path alone: LocalComm copying device memory.
            std::unique_ptr<Comm> gpu = rkv::make_comm(true);
            run_all({*gpu, true, true, "local device"});
#endif
        } else if (mode == "mpi") {
#if RKV_DIST_MPI
            expect(dynamic_cast<rkv::MpiComm*>(comm.get()) != nullptr, "make_comm gives MpiComm under mpirun");
#endif
            run_all({*comm, false, true, "mpi"});
        } else {
#if RKV_DIST_NCCL
            expect(dynamic_cast<rkv::NcclComm*>(comm.get()) != nullptr, "make_comm gives NcclComm under mpirun");
#endif
            run_all({*comm, true, nccl_exact, "nccl device"});
            run_all({*comm, false, true, "nccl host"});
#if RKV_DIST_NCCL && defined(RKV_EMU)
            test_emulated_nccl(comm->rank(), comm->world());
#endif
        }
    } catch (const std::exception& e) {
        comm->abort(1, std::string("dist_tests: ") + e.what());
    }
    int counts[2] = {failed, passed};
#if RKV_DIST_MPI
    if (comm->world() > 1) MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
#endif
    if (my_rank == 0) std::printf("%d passed, %d failed\n", counts[1], counts[0]);
    return counts[0] == 0 ? 0 : 1;
}

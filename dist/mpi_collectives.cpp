#include "dist/mpi_collectives.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace rkv::mpi {

namespace {

// The most elements (bytes, for the byte collectives) one MPI call moves: keeps every count
// and displacement inside an int, and bounds a sum's scratch memory to about one piece.
constexpr size_t kPiece = size_t(1) << 24;
constexpr size_t kPieceBytes = size_t(1) << 26;

template <class E>
MPI_Datatype type_of();
template <>
MPI_Datatype type_of<float>() {
    return MPI_FLOAT;
}
template <>
MPI_Datatype type_of<double>() {
    return MPI_DOUBLE;
}
template <>
MPI_Datatype type_of<int8_t>() {
    return MPI_INT8_T;
}
template <>
MPI_Datatype type_of<uint8_t>() {
    return MPI_UINT8_T;
}
template <>
MPI_Datatype type_of<int32_t>() {
    return MPI_INT32_T;
}
template <>
MPI_Datatype type_of<uint32_t>() {
    return MPI_UINT32_T;
}
template <>
MPI_Datatype type_of<int64_t>() {
    return MPI_INT64_T;
}
template <>
MPI_Datatype type_of<uint64_t>() {
    return MPI_UINT64_T;
}

int rank_in(MPI_Comm comm) {
    int r = 0;
    MPI_Comm_rank(comm, &r);
    return r;
}

int size_of(MPI_Comm comm) {
    int w = 0;
    MPI_Comm_size(comm, &w);
    return w;
}

// `count` elements of `type` (`size` bytes each) whose extent is `stride` elements: block q of
// a buffer then starts at q * stride, so rank q's slice of a send buffer, or its place in a
// receive buffer, is addressed without an int displacement that could overflow.
MPI_Datatype strided_block(size_t count, size_t stride, MPI_Datatype type, size_t size) {
    MPI_Datatype block, strided;
    MPI_Type_contiguous(int(count), type, &block);
    MPI_Type_create_resized(block, 0, MPI_Aint(stride * size), &strided);
    MPI_Type_free(&block);
    MPI_Type_commit(&strided);
    return strided;
}

// out (count) = parts[0] + parts[1] + ... + parts[world - 1], element by element, added in
// that order: the one place where the order of a sum is decided.
template <class E>
void sum_in_rank_order(E* out, const E* parts, size_t count, int world) {
    std::copy(parts, parts + count, out);
    for (int q = 1; q < world; q++) {
        const E* p = parts + size_t(q) * count;
        for (size_t i = 0; i < count; i++) out[i] += p[i];
    }
}

}  // namespace

template <class E>
void all_reduce_sum(E* data, size_t n, MPI_Comm comm) {
    const int world = size_of(comm), rank = rank_in(comm);
    if (world == 1) return;
    const MPI_Datatype type = type_of<E>();
    // Each piece is cut into `world` slices; rank q sums slice q from everyone's values, then
    // everyone gathers the summed slices.
    std::vector<int> counts(world), displs(world), mine(world), mine_displs(world);
    std::vector<E> parts;
    for (size_t off = 0; off < n; off += kPiece) {
        const size_t m = std::min(kPiece, n - off);
        for (int q = 0; q < world; q++) {
            displs[q] = int(m * q / world);
            counts[q] = int(m * (q + 1) / world) - displs[q];
        }
        for (int q = 0; q < world; q++) {
            mine[q] = counts[rank];
            mine_displs[q] = q * counts[rank];
        }
        parts.resize(size_t(world) * counts[rank]);
        E* piece = data + off;
        MPI_Alltoallv(piece, counts.data(), displs.data(), type, parts.data(), mine.data(), mine_displs.data(), type,
                      comm);
        sum_in_rank_order(piece + displs[rank], parts.data(), counts[rank], world);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, piece, counts.data(), displs.data(), type, comm);
    }
}

template <class E>
void reduce_sum(const E* send, E* recv, size_t n, int root, MPI_Comm comm) {
    const int world = size_of(comm), rank = rank_in(comm);
    if (root < 0 || root >= world)
        throw std::invalid_argument("reduce to rank " + std::to_string(root) + " in a world of " +
                                    std::to_string(world));
    if (world == 1) {
        if (send != recv) std::memmove(recv, send, n * sizeof(E));
        return;
    }
    const MPI_Datatype type = type_of<E>();
    // The root gathers a piece from every rank and sums it in rank order.
    const size_t max_len = std::max<size_t>(1, kPiece / world);
    std::vector<E> parts;
    for (size_t off = 0; off < n; off += max_len) {
        const size_t len = std::min(max_len, n - off);
        if (rank == root) parts.resize(size_t(world) * len);
        MPI_Gather(send + off, int(len), type, parts.data(), int(len), type, root, comm);
        if (rank == root) sum_in_rank_order(recv + off, parts.data(), len, world);
    }
}

template <class E>
void reduce_scatter_sum(const E* send, E* recv, size_t recv_count, MPI_Comm comm) {
    const int world = size_of(comm);
    if (world == 1) {
        if (send != recv) std::memmove(recv, send, recv_count * sizeof(E));
        return;
    }
    const MPI_Datatype type = type_of<E>();
    // A piece is the same stretch [off, off + len) of every rank's slice. In place, this
    // rank's writes land in its own slice behind the stretches still to be sent.
    const size_t max_len = std::max<size_t>(1, kPiece / world);
    std::vector<E> parts;
    for (size_t off = 0; off < recv_count; off += max_len) {
        const size_t len = std::min(max_len, recv_count - off);
        parts.resize(size_t(world) * len);
        MPI_Datatype slice = strided_block(len, recv_count, type, sizeof(E));
        MPI_Alltoall(send + off, 1, slice, parts.data(), int(len), type, comm);
        MPI_Type_free(&slice);
        sum_in_rank_order(recv + off, parts.data(), len, world);
    }
}

void all_gather(const void* send, void* recv, size_t bytes, MPI_Comm comm) {
    const int world = size_of(comm), rank = rank_in(comm);
    auto* dst = static_cast<std::byte*>(recv);
    const auto* src = static_cast<const std::byte*>(send);
    if (world == 1) {
        if (src != dst) std::memmove(dst, src, bytes);
        return;
    }
    // MPI forbids a send buffer inside the receive buffer; MPI_IN_PLACE says the same thing.
    const bool in_place = src == dst + size_t(rank) * bytes;
    const size_t max_len = std::max<size_t>(1, kPieceBytes / world);
    for (size_t off = 0; off < bytes; off += max_len) {
        const size_t len = std::min(max_len, bytes - off);
        MPI_Datatype place = strided_block(len, bytes, MPI_BYTE, 1);
        MPI_Allgather(in_place ? MPI_IN_PLACE : src + off, int(len), MPI_BYTE, dst + off, 1, place, comm);
        MPI_Type_free(&place);
    }
}

void broadcast(void* data, size_t bytes, int root, MPI_Comm comm) {
    if (root < 0 || root >= size_of(comm))
        throw std::invalid_argument("broadcast from rank " + std::to_string(root) + " in a world of " +
                                    std::to_string(size_of(comm)));
    auto* p = static_cast<std::byte*>(data);
    for (size_t off = 0; off < bytes; off += kPieceBytes)
        MPI_Bcast(p + off, int(std::min(kPieceBytes, bytes - off)), MPI_BYTE, root, comm);
}

bool init() {
    int running = 0, finalized = 0;
    MPI_Initialized(&running);
    if (running) return false;
    MPI_Finalized(&finalized);
    if (finalized) throw std::runtime_error("MPI was finalized already; it cannot start again");
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    return true;
}

#define RKV_MPI_SUMS(E)                                               \
    template void all_reduce_sum<E>(E*, size_t, MPI_Comm);            \
    template void reduce_sum<E>(const E*, E*, size_t, int, MPI_Comm); \
    template void reduce_scatter_sum<E>(const E*, E*, size_t, MPI_Comm);
RKV_MPI_SUMS(float)
RKV_MPI_SUMS(double)
RKV_MPI_SUMS(int8_t)
RKV_MPI_SUMS(uint8_t)
RKV_MPI_SUMS(int32_t)
RKV_MPI_SUMS(uint32_t)
RKV_MPI_SUMS(int64_t)
RKV_MPI_SUMS(uint64_t)
#undef RKV_MPI_SUMS

}  // namespace rkv::mpi

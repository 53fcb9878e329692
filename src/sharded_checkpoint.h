// AdamW's state in a checkpoint, one file per rank (DESIGN.md section 5). With --zero each
// rank holds the state of its slice of the flat parameter buffer only, and writes just that
// into the checkpoint folder, so no rank ever holds the whole state on its host:
//   optimizer-<rank>-of-<world>.safetensors   (rank and world in five digits)
//     m, v     (n) F32: AdamW's moments of elements [begin, end) of the flat buffer
//     master   (n) F32: their fp32 master weights, when the storage keeps one (bf16)
//     "__metadata__": format "rkv-optimizer-shard", version 1, step, world, rank, total,
//                     begin, end (decimal strings)
// The slices are the ZeRO split of the buffer: ceil(total / world) elements per rank, the
// last ranks' padding past total never written (a rank may have none). Any range of the
// buffer can be read back from the files, so a run resumes on another number of ranks: each
// new rank reads the overlapping parts of the old ranks' files (resharding).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace rkv {

// Elements [begin, end) of the flat parameter buffer.
struct ElementRange {
    size_t begin = 0, end = 0;
    size_t size() const { return end - begin; }
    bool operator==(const ElementRange&) const = default;
};

// Elements per rank of the ZeRO split, padding included: ceil(total / world).
size_t shard_elements(size_t total, int world);
// The table elements of rank's slice: [rank * shard, (rank + 1) * shard) cut at total (empty
// when the slice is all padding).
ElementRange shard_range(size_t total, int world, int rank);

// A part of the range asked for, in the file of one rank of the split that wrote it.
struct ShardPiece {
    int rank;     // whose file
    size_t from;  // first element within that file's tensors
    size_t to;    // where it goes, from the start of the range asked for
    size_t count;
    bool operator==(const ShardPiece&) const = default;
};
// The pieces that make up `want` (cut at total) from the files of a split over `world`
// ranks, in order: they tile [want.begin, min(want.end, total)) exactly.
std::vector<ShardPiece> reshard_pieces(size_t total, int world, ElementRange want);

// "optimizer-00001-of-00002.safetensors"
std::string shard_file_name(int rank, int world);

// AdamW's state of a range of the buffer, fp32 on the host.
struct OptimizerSlice {
    std::vector<float> m, v;
    std::vector<float> master;  // empty when the storage keeps no master (fp32)
};

// Writes rank's file of a checkpoint written by `world` ranks into dir (atomically, as every
// file of a checkpoint). s holds the slice's shard_elements(total, world) elements (the
// padding past total is not written) or exactly shard_range(total, world, rank).size().
void write_optimizer_shard(const std::string& dir, long step, size_t total, int world, int rank,
                           const OptimizerSlice& s);

// Elements [begin, begin + count) of the state, zeros past total, from the `world` rank files
// of checkpoint dir (written at `step` for a buffer of total elements). Every file is opened
// and checked before anything is read (present, its header whole, its metadata that of its
// rank, its tensors of the slice's size, master there iff `master`): any problem is refused
// with the file's name.
OptimizerSlice read_optimizer_shards(const std::string& dir, long step, size_t total, int world, size_t begin,
                                     size_t count, bool master);

}  // namespace rkv

// The built-in corpus: byte-level text generated from a seed, so `./train_rkv` trains
// with no download and no committed text, and so that predicting it well needs
// attention over long spans (structure documented at the top of corpus.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/qa_example.h"

namespace rkv {

enum class CorpusSplit { train, val };  // independent random streams of the same generator

constexpr int64_t kCorpusTrainTokens = int64_t(1) << 22;  // ~4M
constexpr int64_t kCorpusValTokens = int64_t(1) << 18;    // ~256K

// The first n_bytes of the split's document stream: the same bytes for the same seed.
std::string builtin_corpus_text(uint64_t seed, CorpusSplit split, int64_t n_bytes);

// The same stream as byte-level tokens: (n_tokens,), every id < kByteVocab.
std::vector<int32_t> builtin_corpus(uint64_t seed, CorpusSplit split, int64_t n_tokens);

// The seed of the corpus train_rkv generates when given no --train (and eval_rkv's default
// validation data).
constexpr uint64_t kBuiltinCorpusSeed = 0;

// The built-in QA task: n examples (context, question, answers) from documents of the same
// world, of kQaContextBytes / 2 to kQaContextBytes bytes, so that a prompt fits the tiny
// presets' positions. Train and test come from independent streams of the seed.
constexpr int64_t kQaContextBytes = 320;
std::vector<QaExample> builtin_qa(uint64_t seed, CorpusSplit split, int n);

// base's documents (each starting with kDocStart) with extra's spread evenly between them: of m
// extra documents the j-th goes before base's document (j + 1) * n / (m + 1), so that every
// stretch of the stream, and so every window the loader draws, holds both kinds in about their
// proportion. Both keep their documents' order; every token of both is kept.
std::vector<int32_t> interleave_documents(std::span<const int32_t> base, std::span<const int32_t> extra);

// Writes dir/corpus_train.bin and dir/corpus_val.bin (version 1 shards), creating dir; the
// training split with mixed_in's documents spread through it (interleave_documents), the
// validation split always the corpus's own.
struct CorpusFiles {
    std::string train, val;  // the two paths written
};
// Where write_builtin_corpus puts them.
CorpusFiles builtin_corpus_files(const std::string& dir);
CorpusFiles write_builtin_corpus(const std::string& dir, uint64_t seed, int64_t train_tokens = kCorpusTrainTokens,
                                 int64_t val_tokens = kCorpusValTokens, std::span<const int32_t> mixed_in = {});

// The generator's version: part of the cache key, raised with any change to the text it writes.
constexpr int kCorpusVersion = 1;

// This machine's cache directory: $RKV_CACHE_DIR, else $XDG_CACHE_HOME/rkv, else ~/.cache/rkv.
std::string cache_dir();
// The built-in corpus of this seed and size, generated once per machine: its files in
// cache_dir()/corpus-<key>, the key a hash of kCorpusVersion, the seed and the sizes,
// written on first use (atomically, removing what a killed writer left) and reused after.
CorpusFiles cached_builtin_corpus(uint64_t seed, int64_t train_tokens = kCorpusTrainTokens,
                                  int64_t val_tokens = kCorpusValTokens);

// Entropy of the tokens' unigram distribution in nats: the loss of a model that
// predicts by frequency alone, the bar a trained model's loss must fall far below.
double unigram_entropy(std::span<const int32_t> tokens, int vocab_size);

}  // namespace rkv

// The emulator's execution model: a grid runs block after block on the
// calling OS thread (or spread over EMU_THREADS OS threads); the threads of a
// block are cooperative fibers.
//
// Threads start one after another as plain calls on a "runner" fiber. Only a
// thread that waits (at __syncthreads or a warp operation) keeps its runner;
// it hands over to a released thread or to a fresh runner for the next
// unstarted one. A kernel without barriers therefore costs one call per
// thread on a single stack, and a kernel with barriers one stack per thread
// that is waiting and one switch per wait.
//
// Every wait is checked: a barrier reached from different places, a warp
// operation whose lanes disagree or name an exited lane, and a deadlock
// (threads waiting that nothing can release) end the launch with a
// kernel_error naming the threads and the source lines, instead of a hang.
#pragma once

#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <source_location>
#include <stdexcept>
#include <string>

#include "cuda/emu/fiber.h"

namespace emu {

// A bug in a kernel found while emulating it (or a bad kernel argument).
struct kernel_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The order in which the threads of a block start and resume. Races between
// threads (a missing barrier, a non-atomic update) give results that depend
// on it; run a kernel under several orders to expose them. The default comes
// from the environment: EMU_ORDER=fwd|rev|rand (EMU_SEED seeds rand).
enum class Order { fwd, rev, rand };
Order order();
void set_order(Order o);

// How many OS threads run the blocks of a grid (OpenMP), from EMU_THREADS;
// default 1: one thread, blocks in order, every run the same.
int threads();
void set_threads(int n);

enum class WarpOp : std::uint8_t {
    sync,
    shfl_idx,
    shfl_up,
    shfl_down,
    shfl_xor,
    ballot,
    match_any,
    reduce_add,
    reduce_min,
    reduce_max,
    reduce_min_signed,
    reduce_max_signed,
    reduce_and,
    reduce_or,
    reduce_xor
};

enum class BarrierOp : std::uint8_t { sync, count, all, any };

// A thread's asynchronous operations in flight (cuda/wgmma.cuh keeps its products here): the
// thread must have waited for them all when it exits.
struct AsyncState {
    virtual ~AsyncState() = default;
    virtual bool idle() const = 0;
    virtual std::string pending() const = 0;  // what is in flight, for the report
};

// What a kernel's thread is, as the scheduler sees it.
struct Thread {
    enum class State : std::uint8_t { unstarted, running, ready, barrier, warp, exited };
    uint3 idx;            // threadIdx
    unsigned linear = 0;  // x + y*dim.x + z*dim.x*dim.y: lane = linear % 32
    State state = State::unstarted;
    bool holds_stack = false;   // suspended on `stack`, the stack of its runner
    Context context = nullptr;  // where it resumes
    Stack stack;
    std::source_location where;  // the barrier or warp operation it waits at
    // Operands and result of the barrier or warp operation in progress.
    WarpOp op = WarpOp::sync;
    unsigned mask = 0;
    int arg = 0, width = 32;
    std::uint64_t value = 0;
    std::uint64_t result = 0;
    std::shared_ptr<AsyncState> async;  // made by the first asynchronous operation
};

// A launch with its kernel type-erased: `invoke(params)` runs the kernel body
// for the current thread (emu::here says which).
struct Launch {
    dim3 grid, block;
    std::size_t dynamic_smem = 0;
    void (*invoke)(const void* params) = nullptr;
    const void* params = nullptr;
    std::source_location where;  // the launch_kernel call
};

// Runs every block of the grid. Throws kernel_error on a fault.
void run_grid(const Launch& launch);

class Block;

// What the built-in variables read; per OS thread because a block and all of
// its fibers live on one OS thread.
struct Here {
    Thread* thread = nullptr;
    Block* block = nullptr;
    uint3 block_idx{};
    dim3 block_dim{}, grid_dim{};
    unsigned char* dynamic_smem = nullptr;
};
inline constinit thread_local Here here{};

// The kernel-side entry points; the device-language header wraps them.
int syncthreads(BarrierOp op, int predicate, std::source_location where);
std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, std::source_location where);
unsigned active_mask();
// A bug that the calling thread's own checks found (an emulated instruction used against its
// rules): the block stops and the launch throws kernel_error naming the thread and `what`.
[[noreturn]] void fault(const std::string& what);

}  // namespace emu

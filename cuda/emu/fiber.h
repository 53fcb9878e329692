// Stackful fibers for the emulator: the threads of a CUDA block run on them.
//
// This is a thin layer over Boost.Context's fcontext (a register save and a
// stack-pointer swap, a few nanoseconds) plus what AddressSanitizer needs to
// follow a stack switch. Higher-level fiber classes (boost::context::fiber,
// ucontext) were not used: they either allocate per fiber or make a system
// call per switch, and the scheduler in block.cpp switches once per thread
// per barrier.
#pragma once

#include <boost/context/detail/fcontext.hpp>

#include <cstddef>
#include <vector>

namespace emu {

// A fiber stack: [lo, lo + size), with an inaccessible guard page below lo so
// that a kernel overflowing its stack faults instead of corrupting a neighbour.
struct Stack {
    char* lo = nullptr;
    std::size_t size = 0;
};

// Stacks are mmap'ed once and reused for the life of the OS thread: a launch
// of 1024 threads that all wait at a barrier needs 1024 of them at once.
class StackPool {
public:
    StackPool() = default;
    StackPool(const StackPool&) = delete;
    StackPool& operator=(const StackPool&) = delete;
    ~StackPool();

    Stack take();
    // `abandoned`: the fiber on it never finished (its block faulted), so the
    // sanitizer's bookkeeping for the frames left there must be cleared.
    void give(Stack s, bool abandoned = false);

private:
    std::vector<Stack> free_;
    std::vector<Stack> all_;
};

// A suspended execution: where jump() resumes it.
using Context = boost::context::detail::fcontext_t;

// What a fiber receives when it is switched to: `fctx`, the context that
// jumped to it (suspended where it jumped), and `data`, what that one passed.
using Transfer = boost::context::detail::transfer_t;

// Entry of a new fiber; it receives the first jump into it and must never
// return (it ends by jumping away for good).
using Entry = void (*)(Transfer);

Context make_context(const Stack& s, Entry entry);

// Switch to `to`, whose stack is `to_stack` (nullptr: the OS thread's own
// stack, i.e. the scheduler). Returns when someone jumps back here.
// `for_good`: the current fiber will never be resumed (lets ASan free its state).
Transfer jump(Context to, const Stack* to_stack, void* data, bool for_good = false);

// The first thing an Entry must call.
void on_fiber_start();

// Tells the sanitizer's bookkeeping that the switch just made came from the
// OS thread's own stack (the scheduler), whose bounds it then remembers.
void on_resumed_by_scheduler();

}  // namespace emu

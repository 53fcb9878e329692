#include "cuda/emu/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif

namespace emu {
namespace bc = boost::context::detail;

namespace {
// Kernel threads keep little on their stacks, but sanitizer red zones and
// -O0 builds make frames several times larger; the memory is virtual and only
// the pages a fiber touches are ever backed.
constexpr std::size_t kStackSize = 256 << 10;

std::size_t page_size() {
    static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

#ifdef EMU_ASAN
// The stack we last switched from, as the sanitizer reports it, and the OS
// thread's own stack (where the scheduler runs), learned from the former.
thread_local const void* from_bottom = nullptr;
thread_local std::size_t from_size = 0;
thread_local const void* main_bottom = nullptr;
thread_local std::size_t main_size = 0;
#endif
}  // namespace

StackPool::~StackPool() {
    for (const Stack& s : all_) munmap(s.lo - page_size(), kStackSize + page_size());
}

Stack StackPool::take() {
    if (!free_.empty()) {
        Stack s = free_.back();
        free_.pop_back();
        return s;
    }
    const std::size_t guard = page_size();
    void* p =
        mmap(nullptr, kStackSize + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED || mprotect(p, guard, PROT_NONE) != 0) {
        std::fprintf(stderr, "emu: cannot map a fiber stack\n");
        std::abort();
    }
    // Stack tops a multiple of the page size apart would all fall into the same
    // L1 cache sets, and a barrier touches the top of every waiting fiber's
    // stack: shift each top by a different number of cache lines.
    const std::size_t color = (all_.size() % 32) * 128;
    Stack s{static_cast<char*>(p) + guard, kStackSize - color};
    all_.push_back(s);
    return s;
}

void StackPool::give(Stack s, [[maybe_unused]] bool abandoned) {
#ifdef EMU_ASAN
    if (abandoned) __asan_unpoison_memory_region(s.lo, s.size);
#endif
    free_.push_back(s);
}

Context make_context(const Stack& s, Entry entry) { return bc::make_fcontext(s.lo + s.size, s.size, entry); }

// The stacks only matter to the sanitizer, which must be told of every switch.
Transfer jump(Context to, [[maybe_unused]] const Stack* to_stack, void* data, [[maybe_unused]] bool for_good) {
#ifdef EMU_ASAN
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(for_good ? nullptr : &fake_stack, to_stack ? to_stack->lo : main_bottom,
                                   to_stack ? to_stack->size : main_size);
#endif
    const Transfer t = bc::jump_fcontext(to, data);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, &from_bottom, &from_size);
#endif
    return t;
}

void on_fiber_start() {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &from_bottom, &from_size);
#endif
}

void on_resumed_by_scheduler() {
#ifdef EMU_ASAN
    main_bottom = from_bottom;
    main_size = from_size;
#endif
}

}  // namespace emu

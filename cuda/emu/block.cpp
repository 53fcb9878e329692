#include "cuda/emu/block.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string_view>
#include <vector>

namespace emu {
namespace {

Order order_from_env() {
    const char* e = std::getenv("EMU_ORDER");
    const std::string_view v = e ? e : "fwd";
    if (v == "rev") return Order::rev;
    if (v == "rand") return Order::rand;
    return Order::fwd;
}

std::atomic<Order>& order_setting() {
    static std::atomic<Order> o{order_from_env()};
    return o;
}

std::atomic<int>& threads_setting() {
    static std::atomic<int> n{[] {
        const char* e = std::getenv("EMU_THREADS");
        return e ? std::max(1, std::atoi(e)) : 1;
    }()};
    return n;
}

// splitmix64: small, fast, and enough to shuffle threads.
struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
};

std::uint64_t seed_from_env() {
    const char* e = std::getenv("EMU_SEED");
    return e ? std::strtoull(e, nullptr, 0) : 1;
}

const char* name(WarpOp op) {
    switch (op) {
        case WarpOp::sync: return "__syncwarp";
        case WarpOp::shfl_idx: return "__shfl_sync";
        case WarpOp::shfl_up: return "__shfl_up_sync";
        case WarpOp::shfl_down: return "__shfl_down_sync";
        case WarpOp::shfl_xor: return "__shfl_xor_sync";
        case WarpOp::ballot: return "__ballot_sync";
        case WarpOp::match_any: return "__match_any_sync";
        case WarpOp::reduce_add: return "__reduce_add_sync";
        case WarpOp::reduce_min:
        case WarpOp::reduce_min_signed: return "__reduce_min_sync";
        case WarpOp::reduce_max:
        case WarpOp::reduce_max_signed: return "__reduce_max_sync";
        case WarpOp::reduce_and: return "__reduce_and_sync";
        case WarpOp::reduce_or: return "__reduce_or_sync";
        case WarpOp::reduce_xor: return "__reduce_xor_sync";
    }
    return "?";
}

bool is_shuffle(WarpOp op) {
    return op == WarpOp::shfl_idx || op == WarpOp::shfl_up || op == WarpOp::shfl_down || op == WarpOp::shfl_xor;
}

std::string site(const std::source_location& w) {
    std::string_view file = w.file_name();
    if (auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
    return std::string(file) + ":" + std::to_string(w.line());
}

bool same_site(const std::source_location& a, const std::source_location& b) {
    return a.line() == b.line() && a.column() == b.column() &&
           (a.file_name() == b.file_name() || std::strcmp(a.file_name(), b.file_name()) == 0);
}

std::string hex(unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

// "3", "0-15", "0-7,9,12-13": ids sorted ascending.
std::string ranges(const std::vector<unsigned>& ids) {
    std::string out;
    for (std::size_t i = 0; i < ids.size();) {
        std::size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
        if (!out.empty()) out += ',';
        out += std::to_string(ids[i]);
        if (j > i) {
            out += '-';
            out += std::to_string(ids[j]);
        }
        i = j + 1;
    }
    return out;
}

std::string lanes(unsigned mask) {
    std::vector<unsigned> ids;
    for (unsigned l = 0; l < 32; ++l)
        if (mask >> l & 1) ids.push_back(l);
    return ranges(ids);
}

// A warp operation some lanes have reached and others have not yet.
struct WarpGroup {
    unsigned warp, mask, arrived;
    WarpOp op;
};

}  // namespace

Order order() { return order_setting().load(std::memory_order_relaxed); }
void set_order(Order o) { order_setting().store(o, std::memory_order_relaxed); }
int threads() { return threads_setting().load(std::memory_order_relaxed); }
void set_threads(int n) { threads_setting().store(std::max(1, n), std::memory_order_relaxed); }

namespace {
// Its address is the note the scheduler passes when it switches to a fiber.
char kFromScheduler;
}  // namespace

class Block {
public:
    void prepare(const Launch& l);
    void run();  // the block at here.block_idx; throws kernel_error on a fault
    int barrier(BarrierOp op, int predicate, std::source_location where);
    std::uint64_t warp(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, std::source_location where);
    unsigned live_lanes(unsigned warp) const { return lanes_of(warp) & ~exited_lanes_[warp]; }
    unsigned char* dynamic_smem() { return smem_.get(); }
    [[noreturn, gnu::cold, gnu::noinline]] void failed(Thread& th, const std::string& what);

private:
    static void runner(Transfer t);
    void suspend(Thread& th);
    bool next_fiber(Context& to, const Stack*& stack);
    Transfer switch_away(Thread* note, bool for_good);
    void arrived(Transfer t);
    [[noreturn]] void park(Thread& th);
    [[noreturn, gnu::cold, gnu::noinline]] void misused(Thread& th);
    [[noreturn, gnu::cold, gnu::noinline]] void diverged(Thread& th, const WarpGroup& other);
    [[gnu::cold, gnu::noinline]] void exited_while_awaited(const Thread& th, const WarpGroup& g);
    [[gnu::cold, gnu::noinline]] void barrier_diverged();
    std::string calls(const Thread& th) const;
    std::string misuse(const Thread& th) const;
    void exit(Thread& th);
    bool release_barrier(Thread* self);
    void complete(const WarpGroup& g, Thread& self);
    void make_ready(Thread& th);
    Thread* pop_ready();
    unsigned lanes_of(unsigned warp) const;
    std::string who(const Thread& th) const;
    std::string describe_waiters() const;

    const Launch* launch_ = nullptr;
    unsigned n_ = 0;
    std::vector<Thread> threads_;
    std::vector<unsigned> order_;  // start order: indices into threads_
    unsigned next_ = 0;            // threads started so far
    unsigned exited_ = 0;
    std::vector<Thread*> ready_;  // released, waiting to be resumed from ready_head_ on
    std::size_t ready_head_ = 0;
    std::vector<Thread*> at_barrier_;
    std::vector<WarpGroup> groups_;
    std::vector<unsigned> exited_lanes_;  // per warp
    std::string fault_;
    Context scheduler_ = nullptr;
    Stack starting_;  // the stack of the runner being started
    Stack finished_;  // the stack of the runner that ran out of threads
    StackPool pool_;
    Rng rng_{seed_from_env()};
    std::unique_ptr<unsigned char[]> smem_;
};

namespace {
thread_local Block t_block;
}

void Block::prepare(const Launch& l) {
    launch_ = &l;
    n_ = l.block.x * l.block.y * l.block.z;
    threads_.assign(n_, Thread{});
    for (unsigned i = 0; i < n_; ++i) {
        threads_[i].linear = i;
        threads_[i].idx = uint3{i % l.block.x, i / l.block.x % l.block.y, i / (l.block.x * l.block.y)};
    }
    order_.resize(n_);
    std::iota(order_.begin(), order_.end(), 0u);
    if (order() == Order::rev) std::reverse(order_.begin(), order_.end());
    exited_lanes_.assign((n_ + 31) / 32, 0);
    // Exactly the size asked for, so AddressSanitizer sees an overrun.
    smem_.reset(l.dynamic_smem ? new unsigned char[l.dynamic_smem] : nullptr);
}

void Block::run() {
    for (Thread& th : threads_) th.state = Thread::State::unstarted;
    next_ = exited_ = 0;
    ready_.clear();
    ready_head_ = 0;
    at_barrier_.clear();
    groups_.clear();
    std::fill(exited_lanes_.begin(), exited_lanes_.end(), 0u);
    // All-ones bytes are NaN in fp32, fp64, bf16 and fp16 (and -1 as integers):
    // a kernel reading shared memory it never wrote sees it.
    if (smem_) std::memset(smem_.get(), 0xff, launch_->dynamic_smem);
    if (order() == Order::rand)
        for (unsigned i = n_; i > 1; --i) std::swap(order_[i - 1], order_[rng_.below(i)]);

    // Fibers hand over to each other directly (see switch_away); control comes
    // back here only when none of them can run.
    Context to;
    const Stack* stack;
    while (fault_.empty() && next_fiber(to, stack)) arrived(jump(to, stack, &kFromScheduler));
    if (fault_.empty() && exited_ != n_) fault_ = "deadlock: " + describe_waiters();
    if (fault_.empty()) return;

    for (Thread& th : threads_)
        if (th.holds_stack) {
            pool_.give(th.stack, /*abandoned=*/true);
            th.holds_stack = false;
        }
    const uint3 b = here.block_idx;
    const dim3 g = launch_->grid;
    std::string msg = "emu: kernel launched at " + site(launch_->where) + ", block (" + std::to_string(b.x) + "," +
                      std::to_string(b.y) + "," + std::to_string(b.z) + ") of (" + std::to_string(g.x) + "," +
                      std::to_string(g.y) + "," + std::to_string(g.z) + "): " + fault_;
    fault_.clear();
    throw kernel_error(msg);
}

// Each runner starts threads until none is left unstarted. The thread it runs
// may wait; the runner's stack then stays with that thread until it resumes.
void Block::runner(Transfer t) {
    on_fiber_start();
    Block& b = *here.block;
    const Stack mine = b.starting_;
    b.arrived(t);
    while (b.next_ < b.n_ && b.fault_.empty()) {
        Thread& th = b.threads_[b.order_[b.next_++]];
        th.state = Thread::State::running;
        th.stack = mine;
        here.thread = &th;
        b.launch_->invoke(b.launch_->params);
        b.exit(th);
    }
    b.finished_ = mine;
    b.switch_away(nullptr, /*for_good=*/true);
}

void Block::suspend(Thread& th) {
    th.holds_stack = true;
    arrived(switch_away(&th, /*for_good=*/false));
    th.holds_stack = false;
    here.thread = &th;
}

// The fiber to run next: a released thread, else a new runner while threads
// are unstarted. False if there is none.
bool Block::next_fiber(Context& to, const Stack*& stack) {
    if (Thread* next = pop_ready()) {
        next->state = Thread::State::running;
        to = next->context;
        stack = &next->stack;
        return true;
    }
    if (next_ == n_) return false;
    starting_ = pool_.take();
    to = make_context(starting_, &Block::runner);
    stack = &starting_;
    return true;
}

// Leaves the current fiber for the next one, or for the scheduler if none can
// run: one switch per wait, not two through the scheduler. `note` tells the
// fiber we switch to what we are: a thread that waits, or (nullptr) a runner
// that is done.
Transfer Block::switch_away(Thread* note, bool for_good) {
    Context to;
    const Stack* stack;
    if (fault_.empty() && next_fiber(to, stack)) return jump(to, stack, note, for_good);
    return jump(scheduler_, nullptr, note, for_good);
}

// Run by whoever was switched to, with the note of the fiber it replaced.
void Block::arrived(Transfer t) {
    if (t.data == &kFromScheduler) {
        scheduler_ = t.fctx;
        on_resumed_by_scheduler();
    } else if (t.data) {
        static_cast<Thread*>(t.data)->context = t.fctx;  // it waits; resume it there
    } else {
        pool_.give(finished_);  // a runner ran out of threads; we are on another stack
    }
}

// The block has faulted: this thread waits for good; the scheduler reports.
// Its frames are never unwound, so callers build the report (fault_) in
// statements of their own: no temporaries may be alive across this call.
void Block::park(Thread& th) {
    suspend(th);
    std::abort();  // never resumed
}

void Block::exited_while_awaited(const Thread& th, const WarpGroup& g) {
    const unsigned warp = th.linear / 32;
    fault_ = who(th) + " exited while lanes " + lanes(g.arrived) + " of warp " + std::to_string(warp) +
             " wait for it at " + name(g.op) + "(" + hex(g.mask) + ") (" +
             site(threads_[warp * 32 + std::countr_zero(g.arrived)].where) + ")";
}

void Block::exit(Thread& th) {
    if (th.async && !th.async->idle() && fault_.empty()) fault_ = who(th) + " exited with " + th.async->pending();
    th.state = Thread::State::exited;
    ++exited_;
    const unsigned warp = th.linear / 32, bit = 1u << th.linear % 32;
    exited_lanes_[warp] |= bit;
    for (const WarpGroup& g : groups_)
        if (g.warp == warp && (g.mask & bit)) return exited_while_awaited(th, g);
    // Threads that returned no longer count at a barrier.
    if (!at_barrier_.empty() && at_barrier_.size() == n_ - exited_) release_barrier(nullptr);
}

int Block::barrier(BarrierOp op, int predicate, std::source_location where) {
    Thread& th = *here.thread;
    th.state = Thread::State::barrier;
    th.where = where;
    th.arg = static_cast<int>(op);
    th.value = predicate != 0;
    at_barrier_.push_back(&th);
    if (at_barrier_.size() == n_ - exited_) {
        if (!release_barrier(&th)) park(th);
    } else {
        suspend(th);
    }
    return static_cast<int>(th.result);
}

// Every live thread has arrived. They must all wait at the same barrier: the
// GPU would let two __syncthreads() in different branches release each other,
// which CUDA leaves undefined and is almost always a bug.
bool Block::release_barrier(Thread* self) {
    const Thread& first = *at_barrier_.front();
    for (const Thread* t : at_barrier_)
        if (!same_site(t->where, first.where) || t->arg != first.arg) {
            barrier_diverged();
            return false;
        }
    unsigned count = 0;
    for (const Thread* t : at_barrier_) count += static_cast<unsigned>(t->value);
    std::uint64_t result = 0;
    switch (static_cast<BarrierOp>(first.arg)) {
        case BarrierOp::sync: break;
        case BarrierOp::count: result = count; break;
        case BarrierOp::all: result = count == at_barrier_.size(); break;
        case BarrierOp::any: result = count != 0; break;
    }
    for (Thread* t : at_barrier_) {
        t->result = result;
        if (t != self) make_ready(*t);
    }
    if (self) self->state = Thread::State::running;
    at_barrier_.clear();
    return true;
}

std::uint64_t Block::warp(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width,
                          std::source_location where) {
    Thread& th = *here.thread;
    const unsigned warp = th.linear / 32, bit = 1u << th.linear % 32;
    th.op = op;
    th.mask = mask;
    th.value = value;
    th.arg = arg;
    th.width = width;
    th.where = where;
    const bool bad_width = is_shuffle(op) && (width < 1 || width > 32 || (width & (width - 1)));
    if (!(mask & bit) || (mask & ~live_lanes(warp)) || bad_width) misused(th);

    WarpGroup* g = nullptr;
    for (WarpGroup& other : groups_)
        if (other.warp == warp && (other.mask & mask)) {
            if (other.mask != mask || other.op != op) diverged(th, other);
            g = &other;
            break;
        }
    if (!g) g = &groups_.emplace_back(WarpGroup{warp, mask, 0, op});
    g->arrived |= bit;
    if (g->arrived == mask) {
        const WarpGroup done = *g;
        *g = groups_.back();
        groups_.pop_back();
        complete(done, th);
    } else {
        th.state = Thread::State::warp;
        suspend(th);
    }
    return th.result;
}

// The failures of warp(), out of its way: its frame stays small, and it is
// the frame every waiting lane resumes into.
std::string Block::calls(const Thread& th) const {
    return who(th) + " calls " + name(th.op) + "(" + hex(th.mask) + ") at " + site(th.where);
}

std::string Block::misuse(const Thread& th) const {
    const unsigned warp = th.linear / 32, bit = 1u << th.linear % 32;
    const std::string of_warp = " of warp " + std::to_string(warp);
    if (!(th.mask & bit)) return calls(th) + " with a mask that leaves out its own lane";
    if (const unsigned missing = th.mask & ~lanes_of(warp))
        return calls(th) + ": lanes " + lanes(missing) + of_warp + " do not exist in a block of " + std::to_string(n_) +
               " threads";
    if (const unsigned gone = th.mask & exited_lanes_[warp])
        return calls(th) + ": lanes " + lanes(gone) + of_warp + " have exited";
    return calls(th) + " with width " + std::to_string(th.width) + ": it must be a power of 2 up to 32";
}

void Block::misused(Thread& th) {
    fault_ = misuse(th);
    park(th);
}

void Block::failed(Thread& th, const std::string& what) {
    fault_ = who(th) + ": " + what;
    park(th);
}

void Block::diverged(Thread& th, const WarpGroup& other) {
    const unsigned warp = th.linear / 32;
    const Thread& waiting = threads_[warp * 32 + std::countr_zero(other.arrived)];
    fault_ = "divergent warp operation of warp " + std::to_string(warp) + ": lanes " + lanes(other.arrived) +
             " wait at " + name(other.op) + "(" + hex(other.mask) + ") at " + site(waiting.where) + ", " + calls(th);
    park(th);
}

// All lanes of the group have arrived: compute every lane's result at once,
// so no lane reads another's operands after that lane has moved on.
void Block::complete(const WarpGroup& g, Thread& self) {
    Thread* lane0 = &threads_[g.warp * 32];
    const auto word = [&](unsigned l) { return static_cast<std::uint32_t>(lane0[l].value); };

    // The results every lane shares: the ballot and the __reduce_*_sync value.
    std::uint64_t ballot = 0;
    const unsigned first = static_cast<unsigned>(std::countr_zero(g.mask));
    // Add and xor start from zero; min, max, and, or from any lane's value.
    std::uint32_t reduced = g.op == WarpOp::reduce_add || g.op == WarpOp::reduce_xor ? 0 : word(first);
    for (unsigned l = 0; l < 32; ++l) {
        if (!(g.mask >> l & 1)) continue;
        if (lane0[l].value) ballot |= 1u << l;
        const std::uint32_t u = word(l);
        const auto s = static_cast<std::int32_t>(u), acc = static_cast<std::int32_t>(reduced);
        switch (g.op) {
            case WarpOp::reduce_add: reduced += u; break;
            case WarpOp::reduce_min: reduced = std::min(reduced, u); break;
            case WarpOp::reduce_max: reduced = std::max(reduced, u); break;
            case WarpOp::reduce_min_signed: reduced = static_cast<std::uint32_t>(std::min(acc, s)); break;
            case WarpOp::reduce_max_signed: reduced = static_cast<std::uint32_t>(std::max(acc, s)); break;
            case WarpOp::reduce_and: reduced &= u; break;
            case WarpOp::reduce_or: reduced |= u; break;
            case WarpOp::reduce_xor: reduced ^= u; break;
            default: break;
        }
    }

    for (unsigned l = 0; l < 32; ++l) {
        if (!(g.mask >> l & 1)) continue;
        Thread& t = lane0[l];
        std::uint64_t r = 0;
        if (is_shuffle(g.op)) {
            // PTX shfl.sync: a lane reads from lane j when j lies in its segment of
            // `width` lanes (shfl.up: not below it), otherwise keeps its own value.
            const int lane = static_cast<int>(l), b = t.arg & 31;
            const int segmask = (32 - t.width) & 31;
            const int clamp = g.op == WarpOp::shfl_up ? 0 : 31;
            const int max_lane = (lane & segmask) | (clamp & ~segmask);
            int j = lane;
            bool ok = true;
            switch (g.op) {
                case WarpOp::shfl_idx: j = (lane & segmask) | (b & ~segmask); break;
                case WarpOp::shfl_up:
                    j = lane - b;
                    ok = j >= max_lane;
                    break;
                case WarpOp::shfl_down:
                    j = lane + b;
                    ok = j <= max_lane;
                    break;
                default:
                    j = lane ^ b;
                    ok = j <= max_lane;
                    break;
            }
            if (!ok) j = lane;
            // Reading a lane outside the mask is undefined on the GPU: poison it.
            r = (g.mask >> j & 1) ? lane0[j].value : ~std::uint64_t{0};
        } else if (g.op == WarpOp::match_any) {
            for (unsigned k = 0; k < 32; ++k)
                if ((g.mask >> k & 1) && lane0[k].value == t.value) r |= 1u << k;
        } else if (g.op == WarpOp::ballot) {
            r = ballot;
        } else if (g.op != WarpOp::sync) {
            r = reduced;
        }
        t.result = r;
        if (&t != &self) make_ready(t);
    }
    self.state = Thread::State::running;
}

void Block::make_ready(Thread& th) {
    th.state = Thread::State::ready;
    ready_.push_back(&th);
}

Thread* Block::pop_ready() {
    if (ready_head_ == ready_.size()) {
        ready_.clear();
        ready_head_ = 0;
        return nullptr;
    }
    if (order() == Order::rand) {
        const auto pick = ready_head_ + rng_.below(static_cast<unsigned>(ready_.size() - ready_head_));
        std::swap(ready_[ready_head_], ready_[pick]);
    }
    return ready_[ready_head_++];
}

unsigned Block::lanes_of(unsigned warp) const {
    const unsigned first = warp * 32;
    return n_ - first >= 32 ? ~0u : (1u << (n_ - first)) - 1;
}

std::string Block::who(const Thread& th) const {
    const uint3 i = th.idx;
    return "thread " + std::to_string(th.linear) + " (" + std::to_string(i.x) + "," + std::to_string(i.y) + "," +
           std::to_string(i.z) + ")";
}

void Block::barrier_diverged() { fault_ = "divergent __syncthreads: " + describe_waiters(); }

// "threads 0-15 wait at __syncthreads() (k.cu:12); threads 16-31 wait at ..."
std::string Block::describe_waiters() const {
    std::map<std::string, std::vector<unsigned>> by_place;
    for (const Thread& t : threads_) {
        std::string place;
        if (t.state == Thread::State::barrier)
            place = "__syncthreads() at " + site(t.where);
        else if (t.state == Thread::State::warp)
            place = std::string(name(t.op)) + "(" + hex(t.mask) + ") at " + site(t.where);
        else
            continue;
        by_place[place].push_back(t.linear);
    }
    std::string out;
    for (const auto& [place, ids] : by_place) {
        if (!out.empty()) out += "; ";
        out += (ids.size() == 1 ? "thread " : "threads ") + ranges(ids) + " wait at " + place;
    }
    if (exited_) out += "; " + std::to_string(exited_) + " threads have exited";
    return out;
}

namespace {

// Runs blocks first, first + step, ... of the grid on this OS thread.
void run_blocks(const Launch& l, unsigned long long first, unsigned long long step) {
    Block& b = t_block;
    b.prepare(l);
    here.block = &b;
    here.block_dim = l.block;
    here.grid_dim = l.grid;
    here.dynamic_smem = b.dynamic_smem();
    struct Reset {
        ~Reset() { here = Here{}; }
    } reset;
    const unsigned long long blocks = 1ull * l.grid.x * l.grid.y * l.grid.z;
    for (unsigned long long i = first; i < blocks; i += step) {
        here.block_idx = uint3{static_cast<unsigned>(i % l.grid.x), static_cast<unsigned>(i / l.grid.x % l.grid.y),
                               static_cast<unsigned>(i / (1ull * l.grid.x * l.grid.y))};
        b.run();
    }
}

}  // namespace

void run_grid(const Launch& l) {
    const unsigned long long blocks = 1ull * l.grid.x * l.grid.y * l.grid.z;
    const int workers = static_cast<int>(std::min<unsigned long long>(threads(), blocks));
    if (workers <= 1) {
        run_blocks(l, 0, 1);
        return;
    }
    // Blocks are independent, as on the GPU; every OS thread has its own
    // scheduler, stacks and static shared memory. The first fault wins.
    std::exception_ptr fault;
    std::mutex fault_mutex;
#pragma omp parallel num_threads(workers)
    try {
        run_blocks(l, static_cast<unsigned long long>(omp_get_thread_num()), workers);
    } catch (...) {
        std::lock_guard lock(fault_mutex);
        if (!fault) fault = std::current_exception();
    }
    if (fault) std::rethrow_exception(fault);
}

int syncthreads(BarrierOp op, int predicate, std::source_location where) {
    return here.block->barrier(op, predicate, where);
}

std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width, std::source_location where) {
    return here.block->warp(op, mask, value, arg, width, where);
}

unsigned active_mask() { return here.block->live_lanes(here.thread->linear / 32); }

void fault(const std::string& what) { here.block->failed(*here.thread, what); }

}  // namespace emu

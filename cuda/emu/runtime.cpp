// The CUDA runtime API on the host. Functions return the error codes the
// real runtime returns for the same mistakes and record them for
// cudaGetLastError; everything runs synchronously, in call order.
#include "cuda/emu/runtime.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <set>

// The opaque handles of the runtime's C API.
struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    std::chrono::steady_clock::time_point when;
    bool recorded = false;
};

namespace emu {
namespace {

constexpr std::size_t kAlignment = 256;  // cudaMalloc's guarantee
constexpr int kDefaultDynamicSmem = 48 << 10;
constexpr int kMaxDynamicSmem = 227 << 10;  // sm_90: 228 KiB per SM, 1 KiB reserved per block

thread_local cudaError_t last_error = cudaSuccess;

struct Registry {
    std::mutex mutex;
    std::map<const std::byte*, Allocation> allocations;  // by base address
    std::map<const void*, int> max_dynamic_smem;         // cudaFuncSetAttribute
    std::set<cudaStream_t> streams;
    std::size_t device_bytes = 0, peak_device_bytes = 0;  // not pinned
};

Registry& registry() {
    static Registry r;
    return r;
}

cudaError_t allocate(void** p, std::size_t size, bool pinned) {
    if (!p) return record(cudaErrorInvalidValue);
    *p = nullptr;
    if (size == 0) return cudaSuccess;
    void* mem = ::operator new (size, std::align_val_t{kAlignment}, std::nothrow);
    if (!mem) return record(cudaErrorMemoryAllocation);
    // All-ones bytes are NaN in every floating format: a kernel that reads what
    // nobody wrote produces NaN instead of plausible zeros.
    std::memset(mem, 0xff, size);
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    const auto* base = static_cast<const std::byte*>(mem);
    r.allocations.emplace(base, Allocation{base, size, pinned});
    if (!pinned) r.peak_device_bytes = std::max(r.peak_device_bytes, r.device_bytes += size);
    *p = mem;
    return cudaSuccess;
}

cudaError_t release(void* p, bool pinned) {
    if (!p) return cudaSuccess;
    Registry& r = registry();
    {
        std::lock_guard lock(r.mutex);
        const auto it = r.allocations.find(static_cast<const std::byte*>(p));
        if (it == r.allocations.end() || it->second.pinned != pinned) return record(cudaErrorInvalidValue);
        if (!pinned) r.device_bytes -= it->second.size;
        r.allocations.erase(it);
    }
    ::operator delete (p, std::align_val_t{kAlignment});
    return cudaSuccess;
}

// A copy must stay inside the allocation its device side lies in.
bool fits(const void* p, std::size_t count) {
    const auto a = allocation_of(p);
    return !a || a->contains(p, count);
}

bool is_device(const void* p) { return allocation_of(p).has_value(); }

bool valid_stream(cudaStream_t s) {
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    return r.streams.count(s) != 0;
}

}  // namespace

cudaError_t record(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

DeviceBytes device_bytes() {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    return {r.device_bytes, r.peak_device_bytes};
}

void reset_peak_device_bytes() {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    r.peak_device_bytes = r.device_bytes;
}

std::optional<Allocation> allocation_of(const void* p) {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    auto it = r.allocations.upper_bound(static_cast<const std::byte*>(p));
    if (it == r.allocations.begin()) return std::nullopt;
    --it;
    if (!it->second.contains(p, 0)) return std::nullopt;
    return it->second;
}

cudaError_t check_launch(const void* kernel, dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream) {
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
        return cudaErrorInvalidConfiguration;
    int limit = kDefaultDynamicSmem;
    {
        Registry& r = registry();
        std::lock_guard lock(r.mutex);
        if (const auto it = r.max_dynamic_smem.find(kernel); it != r.max_dynamic_smem.end()) limit = it->second;
    }
    if (smem > static_cast<std::size_t>(limit)) return cudaErrorInvalidValue;
    if (!valid_stream(stream)) return cudaErrorInvalidResourceHandle;
    return cudaSuccess;
}

}  // namespace emu

using emu::record;

// ---- Errors -------------------------------------------------------------------

cudaError_t cudaGetLastError() {
    const cudaError_t e = emu::last_error;
    emu::last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() { return emu::last_error; }

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        default: return "cudaErrorUnknown";
    }
}

const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidDeviceFunction: return "invalid device function";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        default: return "unknown error";
    }
}

// ---- Device -------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return record(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int* device) {
    if (!device) return record(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaDeviceReset() { return cudaSuccess; }

// An H100 SXM (sm_90), so code that sizes itself from the properties takes
// the same decisions as on the GPU we train on.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (!p) return record(cudaErrorInvalidValue);
    if (device != 0) return record(cudaErrorInvalidDevice);
    *p = cudaDeviceProp{};
    std::strncpy(p->name, "NVIDIA H100 80GB HBM3 (emulated)", sizeof p->name - 1);
    p->totalGlobalMem = 85'520'809'984ull;
    p->sharedMemPerBlock = 48 << 10;
    p->sharedMemPerBlockOptin = 227 << 10;
    p->sharedMemPerMultiprocessor = 228 << 10;
    p->reservedSharedMemPerBlock = 1 << 10;
    p->regsPerBlock = 65536;
    p->regsPerMultiprocessor = 65536;
    p->warpSize = 32;
    p->memPitch = 2147483647;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->textureAlignment = 512;
    p->multiProcessorCount = 132;
    p->l2CacheSize = 50 << 20;
    p->maxThreadsPerMultiProcessor = 2048;
    p->maxBlocksPerMultiProcessor = 32;
    p->memoryBusWidth = 5120;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 3;
    p->unifiedAddressing = 1;
    p->managedMemory = 1;
    p->ECCEnabled = 1;
    p->cooperativeLaunch = 1;
    p->clusterLaunch = 1;
    p->memoryPoolsSupported = 1;
    p->globalL1CacheSupported = 1;
    p->localL1CacheSupported = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    cudaDeviceProp p;
    if (!value) return record(cudaErrorInvalidValue);
    if (const cudaError_t e = cudaGetDeviceProperties(&p, device); e != cudaSuccess) return e;
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
        case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
        case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
        case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
        case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
        case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
        case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(p.sharedMemPerBlock); break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(p.sharedMemPerBlockOptin); break;
        case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
            *value = static_cast<int>(p.sharedMemPerMultiprocessor);
            break;
        case cudaDevAttrWarpSize: *value = p.warpSize; break;
        case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
        case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
        case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
        case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
        case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
        case cudaDevAttrMaxRegistersPerBlock: *value = p.regsPerBlock; break;
        default: return record(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (!func) return record(cudaErrorInvalidDeviceFunction);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;  // hints only
    if (value < 0 || value > emu::kMaxDynamicSmem) return record(cudaErrorInvalidValue);
    emu::Registry& r = emu::registry();
    std::lock_guard lock(r.mutex);
    r.max_dynamic_smem[func] = value;
    return cudaSuccess;
}

// ---- Memory -------------------------------------------------------------------

cudaError_t cudaMalloc(void** p, size_t size) { return emu::allocate(p, size, false); }
cudaError_t cudaFree(void* p) { return emu::release(p, false); }
cudaError_t cudaMallocManaged(void** p, size_t size, unsigned int) { return emu::allocate(p, size, false); }
cudaError_t cudaMallocHost(void** p, size_t size) { return emu::allocate(p, size, true); }
cudaError_t cudaHostAlloc(void** p, size_t size, unsigned int) { return emu::allocate(p, size, true); }
cudaError_t cudaFreeHost(void* p) { return emu::release(p, true); }
cudaError_t cudaMallocAsync(void** p, size_t size, cudaStream_t) { return emu::allocate(p, size, false); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return emu::release(p, false); }

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
    if (!free || !total) return record(cudaErrorInvalidValue);
    *total = 85'520'809'984ull;
    *free = *total;  // the host decides; report the GPU's figure
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
    if (count == 0) return cudaSuccess;
    if (!dst || !src) return record(cudaErrorInvalidValue);
    const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_device && !emu::is_device(dst)) || (src_device && !emu::is_device(src)) || !emu::fits(dst, count) ||
        !emu::fits(src, count))
        return record(cudaErrorInvalidValue);
    std::memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream) {
    if (!emu::valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
    return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void* p, int value, size_t count) {
    if (count == 0) return cudaSuccess;
    if (!emu::is_device(p) || !emu::fits(p, count)) return record(cudaErrorInvalidValue);
    std::memset(p, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t count, cudaStream_t stream) {
    if (!emu::valid_stream(stream)) return record(cudaErrorInvalidResourceHandle);
    return cudaMemset(p, value, count);
}

// A __device__ or __constant__ variable is a plain global on the host.
cudaError_t cudaMemcpyToSymbol(const void* symbol, const void* src, size_t count, size_t offset, cudaMemcpyKind) {
    if (!symbol || !src) return record(cudaErrorInvalidValue);
    std::memcpy(static_cast<char*>(const_cast<void*>(symbol)) + offset, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyFromSymbol(void* dst, const void* symbol, size_t count, size_t offset, cudaMemcpyKind) {
    if (!symbol || !dst) return record(cudaErrorInvalidValue);
    std::memcpy(dst, static_cast<const char*>(symbol) + offset, count);
    return cudaSuccess;
}

// ---- Streams and events -----------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
    if (!s) return record(cudaErrorInvalidValue);
    *s = new CUstream_st{flags};
    emu::Registry& r = emu::registry();
    std::lock_guard lock(r.mutex);
    r.streams.insert(*s);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    emu::Registry& r = emu::registry();
    std::lock_guard lock(r.mutex);
    if (r.streams.erase(s) == 0) return record(cudaErrorInvalidResourceHandle);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    return emu::valid_stream(s) ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
    if (!e) return record(cudaErrorInvalidResourceHandle);
    return cudaStreamSynchronize(s);
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
    if (!e) return record(cudaErrorInvalidValue);
    *e = new CUevent_st{};
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }

cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e) return record(cudaErrorInvalidResourceHandle);
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e || !emu::valid_stream(s)) return record(cudaErrorInvalidResourceHandle);
    e->when = std::chrono::steady_clock::now();
    e->recorded = true;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : record(cudaErrorInvalidResourceHandle); }

cudaError_t cudaEventQuery(cudaEvent_t e) { return cudaEventSynchronize(e); }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms) return record(cudaErrorInvalidValue);
    if (!start || !end) return record(cudaErrorInvalidResourceHandle);
    if (!start->recorded || !end->recorded) return record(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
    return cudaSuccess;
}

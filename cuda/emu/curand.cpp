// cuRAND on the host: a generator asked for on the device is its host twin
// (same algorithms and, by cuRAND's design, the same numbers for the same
// seed and offset). It writes into emulated device memory, which is host
// memory. This definition takes precedence over libcurand's, whose device
// generators need a GPU; every other curand* call is the real library.
#include <curand.h>

curandStatus_t curandCreateGenerator(curandGenerator_t* generator, curandRngType_t type) {
    return curandCreateGeneratorHost(generator, type);
}

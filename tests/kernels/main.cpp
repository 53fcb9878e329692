// The kernel tests: each kernel of layers/ and optim/ against ref/ (DESIGN.md section 6),
// through the emulator (kernel_tests) or on a GPU (kernel_tests_gpu).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

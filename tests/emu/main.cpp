// The emulator's tests: Catch2 with its own main.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

// The product's version: one value, CMake's project(VERSION), for the CLI, the enclave service's
// `describe`, the EIF metadata and the Python SDK's check (tests compare them).
#pragma once

namespace shield_nitro {

// The version string ("MAJOR.MINOR.PATCH"), static storage.
const char* version();

}  // namespace shield_nitro

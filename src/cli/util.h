// Small helpers shared by the CLI commands.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/file_io.h"
#include "shield_nitro/core/progress.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::cli {

// Prints JSON to stdout, pretty (2-space indent) like nitro-cli and the AWS CLI.
void print_json(const nlohmann::ordered_json& j);

// Reads a password from the environment variable (never argv), or prompts on the tty when
// var is empty and stdin is a terminal. Throws kUsage when neither is possible.
SecureBytes read_password(const std::string& env_var);

// Parses "N=HEX" (e.g. a PCR) into its parts; throws kUsage naming the option.
std::pair<int, Bytes> parse_index_hex(const std::string& arg, const std::string& option);

// Writing OUT would replace IN when both name one file (x and ./x, a hard link, a symlink):
// the atomic rename would destroy the input, so this refuses (kUsage) before anything is read.
void refuse_same_file(const std::string& in, const std::string& out);

// A progress bar (label) for reading in, when it is large (>= 64 MiB) or of unknown size (a
// pipe); null otherwise. report_to(p) feeds it (an empty function for null).
std::unique_ptr<Progress> progress_for(const char* label, const FileReader& in);
std::function<void(uint64_t)> report_to(Progress* p);

// The `attest` command group, shared by cmd_attest.cpp (verify, show) and cmd_nsm.cpp
// (request): whichever registers first creates it.
CLI::App& attest_group(CLI::App& app);

}  // namespace shield_nitro::cli

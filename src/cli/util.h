// Small helpers shared by the CLI commands.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/core/secure_bytes.h"

namespace shield_nitro::cli {

// Prints JSON to stdout, pretty (2-space indent) like nitro-cli and the AWS CLI.
void print_json(const nlohmann::ordered_json& j);

// Reads a password from the environment variable (never argv), or prompts on the tty when
// var is empty and stdin is a terminal. Throws kUsage when neither is possible.
SecureBytes read_password(const std::string& env_var);

// Parses "N=HEX" (e.g. a PCR) into its parts; throws kUsage naming the option.
std::pair<int, Bytes> parse_index_hex(const std::string& arg, const std::string& option);

// The `attest` command group, shared by cmd_attest.cpp (verify, show) and cmd_nsm.cpp
// (request): whichever registers first creates it.
CLI::App& attest_group(CLI::App& app);

}  // namespace shield_nitro::cli

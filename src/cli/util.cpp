#include "util.h"

#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "shield_nitro/core/error.h"

namespace shield_nitro::cli {

void print_json(const nlohmann::ordered_json& j) { std::cout << j.dump(2) << std::endl; }

SecureBytes read_password(const std::string& env_var) {
  if (!env_var.empty()) {
    const char* v = std::getenv(env_var.c_str());
    if (!v) throw Error(Errc::kUsage, "environment variable " + env_var + " is not set");
    if (!*v) throw Error(Errc::kUsage, "environment variable " + env_var + " is empty");
    return SecureBytes(as_bytes(v));
  }
  if (!::isatty(STDIN_FILENO))
    throw Error(Errc::kUsage, "no password: use --password-env VAR, or run on a terminal to be prompted");
  std::cerr << "Password: " << std::flush;
  termios old{};
  tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  SecureBytes pw;
  char c;
  while (::read(STDIN_FILENO, &c, 1) == 1 && c != '\n') pw.append({reinterpret_cast<uint8_t*>(&c), 1});
  c = 0;
  tcsetattr(STDIN_FILENO, TCSANOW, &old);
  std::cerr << std::endl;
  if (pw.empty()) throw Error(Errc::kUsage, "empty password");
  return pw;
}

std::pair<int, Bytes> parse_index_hex(const std::string& arg, const std::string& option) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error(Errc::kUsage, option + " expects N=HEX, got '" + arg + "'");
  int index = 0;
  for (size_t i = 0; i < eq; ++i) {
    if (arg[i] < '0' || arg[i] > '9' || index > 1000)
      throw Error(Errc::kUsage, option + " expects a decimal index before '=', got '" + arg.substr(0, eq) + "'");
    index = index * 10 + (arg[i] - '0');
  }
  try {
    return {index, hex_decode(arg.substr(eq + 1))};
  } catch (const Error& e) {
    throw Error(Errc::kUsage, option + " " + arg.substr(0, eq) + ": " + e.what());
  }
}

void refuse_same_file(const std::string& in, const std::string& out) {
  if (in == "-" || out == "-") return;
  struct stat a{}, b{};
  if (::stat(in.c_str(), &a) != 0 || ::stat(out.c_str(), &b) != 0) return;
  if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    throw Error(Errc::kUsage, "input " + in + " and output " + out +
                                  " are the same file: writing the output would destroy the input; choose another "
                                  "output path");
}

namespace {
// Show a progress bar when the input is at least this big (or of unknown size).
constexpr int64_t kProgressThreshold = 64 << 20;
}  // namespace

std::unique_ptr<Progress> progress_for(const char* label, const FileReader& in) {
  if (in.size() >= 0 && in.size() < kProgressThreshold) return nullptr;
  return std::make_unique<Progress>(label, in.size() > 0 ? static_cast<uint64_t>(in.size()) : 0);
}

std::function<void(uint64_t)> report_to(Progress* p) {
  if (!p) return {};
  return [p](uint64_t n) { p->add(n); };
}

CLI::App& attest_group(CLI::App& app) {
  try {
    return *app.get_subcommand("attest");
  } catch (const CLI::OptionNotFound&) {
    auto* attest = app.add_subcommand("attest", "Request, verify and inspect Nitro attestation documents");
    attest->require_subcommand(1);
    return *attest;
  }
}

}  // namespace shield_nitro::cli

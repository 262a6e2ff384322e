#include "registry.h"

#include <algorithm>
#include <vector>

namespace shield_nitro::cli {
namespace {
std::vector<std::pair<int, SetupFn>>& entries() {
  static std::vector<std::pair<int, SetupFn>> e;
  return e;
}
}  // namespace

CommandRegistrar::CommandRegistrar(int order, SetupFn setup) { entries().emplace_back(order, std::move(setup)); }

void setup_all(CLI::App& app) {
  auto& e = entries();
  std::stable_sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [order, fn] : e) fn(app);
}

}  // namespace shield_nitro::cli

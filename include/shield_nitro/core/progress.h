// A progress bar on stderr, shown only when stderr is a terminal and the work is expected
// to take more than a moment. Thread-safe add().
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace shield_nitro {

// One bar for one task; never throws.
class Progress {
 public:
  // total = expected units (bytes), 0 if unknown; enabled false draws nothing.
  Progress(std::string label, uint64_t total, bool enabled = true);
  ~Progress();
  // n more units done (any thread); redraws at most a few times a second.
  void add(uint64_t n);
  // Draws the final state and ends the line (the destructor does it if not called).
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::atomic<int64_t> last_draw_ns_{0};
  int64_t start_ns_;
  bool enabled_;
  bool finished_ = false;
};

}  // namespace shield_nitro

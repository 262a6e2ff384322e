// Parallel chunk processing with bounded memory and ordered output.
#pragma once

#include <cstdint>
#include <functional>

#include "shield_nitro/core/bytes.h"
#include "shield_nitro/shield/stream.h"
#include "shield_nitro/core/byte_io.h"

namespace shield_nitro::shield::detail {

// 0 means every core.
unsigned resolve_threads(unsigned requested);

// Transforms record `index` (last set on the final one) from in to out; returns bytes written.
using RecordFn = std::function<size_t(uint64_t index, bool last, ByteView in, uint8_t* out)>;

struct RecordJob {
  size_t in_record = 0;     // every record but the last has exactly this many bytes
  size_t out_capacity = 0;  // upper bound of one result
  RecordFn fn;
};

// Reads records from in (looking one byte ahead so the last record is known), runs fn on
// `threads` workers with a few records in flight per worker, and writes results to out in
// input order. An empty input is one empty last record. The first exception (in the order
// of the records) is rethrown after the workers stopped. progress gets input bytes.
void run_records(Source& in, Sink& out, const RecordJob& job, unsigned threads, const ProgressFn& progress);

// Runs fn(i) for every i in [0, n) on up to `threads` threads, the caller included;
// rethrows the first exception once all have stopped.
void parallel_for(uint64_t n, unsigned threads, const std::function<void(uint64_t)>& fn);

}  // namespace shield_nitro::shield::detail

// The sealed header's codec and key schedule (docs/stream-format.md §8), shared by seal and
// open. Private to src/sealed.
#pragma once

#include <array>

#include "shield_nitro/sealed/sealed.h"
#include "shield_nitro/shield/shield.h"

namespace shield_nitro::sealed::detail {

inline constexpr std::array<uint8_t, 4> kMagic = {'S', 'N', 'S', 'L'};
inline constexpr uint8_t kVersion = 0x01;

// The header for these fields, tag included (computed under data_key). kUsage when a field
// breaks a limit (the writer's fault, not the file's).
Bytes build_header(const std::string& key_id, ByteView blob, const EncryptionContext& context, ByteView data_key);

// Throws kAuth unless header's tag verifies under data_key; kFormat for a key of another size.
void check_header(const Header& header, ByteView data_key);

// The key-mode stream header at the start of after (the bytes that follow a sealed header),
// checked as far as it can be without a key; kFormat otherwise.
ByteView stream_header_after(ByteView after);

// The Shield (key mode) whose master key is bound to the data key and the whole header.
shield::Shield stream_shield(ByteView data_key, const Header& header, shield::Suite suite);

}  // namespace shield_nitro::sealed::detail

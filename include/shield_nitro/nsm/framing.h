// The simulator socket's framing (the "sim:DIR" transport's wire format, shared by the client
// transport here and the NSM simulator's server in nsm_sim/): a 4-byte big-endian length, then
// the CBOR message.
#pragma once

#include <cstddef>

#include "shield_nitro/core/bytes.h"

namespace shield_nitro::nsm::framing {

enum class FrameStatus { kOk, kEof, kTooLarge };

// Reads one frame into out. kEof: the peer closed before a new frame began. kTooLarge: the
// announced length exceeds max (its body is left unread). Throws Error(kIo) on a socket
// error or a frame cut short, Error(kTimeout) when the socket's receive timeout expires.
FrameStatus read_frame(int fd, size_t max, Bytes& out);

// Writes one frame (never raises SIGPIPE). Throws Error(kIo) on failure.
void write_frame(int fd, ByteView message);

// Applies a receive/send timeout to a socket.
void set_socket_timeout(int fd, int seconds);

}  // namespace shield_nitro::nsm::framing

// Internal to relay: short answers on a client socket, and closing it so the client reads them.
#pragma once

#include <string>
#include <string_view>

namespace shield_nitro::relay {

// Writes all of data (MSG_NOSIGNAL; with blocking=false one attempt only). False if it failed.
bool send_all(int fd, std::string_view data, bool blocking = true);

// "HTTP/1.1 <status> <reason>" with a text/plain body of `why` and Connection: close.
bool send_http_error(int fd, int status, const std::string& why, bool blocking = true);

// Shuts down writing, then reads and discards what the client still sends (at most 1 MiB, 2 s,
// or until stop_fd is readable) so that closing does not reset the connection before the client
// read our answer (a close with unread input sends RST on Linux).
void linger_close(int fd, int stop_fd);

}  // namespace shield_nitro::relay

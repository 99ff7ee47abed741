// systemd's notification protocol (sd_notify(3), "the documented socket
// protocol"), for Type=notify units: one datagram of "KEY=value" lines to
// the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the
// abstract namespace). Without $NOTIFY_SOCKET every call does nothing, so
// orchardd runs the same outside systemd.
//
// What orchardd sends (server/orchardd_main.cc):
//   READY=1 (with STATUS= and MAINPID=)  once every listener accepts, and
//                                         again after each reload
//   RELOADING=1 + MONOTONIC_USEC=         when a SIGHUP reload starts
//   STOPPING=1                            when SIGTERM/SIGINT starts the drain
//   WATCHDOG=1                            every half $WATCHDOG_USEC, while
//                                         every event loop still answers
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace orchard::server::sdnotify {

// Sends `state` (newline-separated assignments). True when it was sent;
// false without $NOTIFY_SOCKET or when the socket refused it (not fatal).
bool send(std::string_view state);

// $WATCHDOG_USEC when the watchdog is meant for this process ($WATCHDOG_PID
// absent or ours), else 0.
int64_t watchdogUsec();

// "MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>", for RELOADING=1.
std::string monotonicUsec();

}  // namespace orchard::server::sdnotify

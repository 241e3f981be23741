// The netpoller's interface to the runtime layer (colony::net is built on it). Not a user API.
//
// Each runtime owns one edge-triggered epoll set. A non-blocking fd is registered once
// (poll_open), for reading and writing at the same time. A fiber that gets EAGAIN from a
// read or write calls poll_wait: it parks (a plain thread blocks) until the fd becomes ready,
// the deadline passes, or the descriptor is closed or interrupted. An M that looks for work
// polls the set without blocking; when nothing else is runnable, exactly one M blocks in
// epoll_wait until the next timer (docs/design.md, "Netpoller").
//
// Protocol (Go's pollDesc): each direction has a "ready" flag set by an event that found nobody
// waiting, and consumed by the next poll_wait, which then returns at once. So the readiness
// edge between a syscall's EAGAIN and the poll_wait that follows is never lost. A wake-up is a
// hint: the caller retries its syscall and calls poll_wait again on EAGAIN.
#pragma once

#include <cstdint>

namespace colony::sched {

class Scheduler;
struct PollDesc;

// PollMode: which readiness a poll_wait waits for.
enum class PollMode : std::uint8_t { read = 0, write = 1 };

// poll_open: registers `fd` (which must already be O_NONBLOCK) with the poller of the calling
// fiber's runtime (the default runtime on a plain thread). Throws std::system_error (with the
// errno of epoll_ctl and "colony: poll_open") on failure. The PollDesc stays valid until
// poll_close; it belongs to that runtime.
PollDesc* poll_open(int fd);

// poll_close: unregisters the fd and wakes every waiter of both directions (their poll_wait
// returns ECANCELED). Call it before close(fd), and only once no other call on `pd` can start.
void poll_close(PollDesc* pd) noexcept;

// poll_wait: waits until the fd is ready for `mode`, or until deadline_ns (sched::nanotime()
// clock; kNoDeadline = none). Returns 0 (ready: retry the syscall), ETIMEDOUT, or ECANCELED
// (poll_close or poll_interrupt). Parks a fiber with wait reason "IO wait"; blocks a plain
// thread. Several waiters per direction are allowed (all are woken by an event).
int poll_wait(PollDesc* pd, PollMode mode, std::int64_t deadline_ns);

// poll_interrupt: wakes the current waiters of `mode` with ECANCELED (a Context cancelled, a
// shutdown of the socket). With nobody waiting, it sets the direction's ready flag instead, so a
// caller that was about to wait returns at once (with 0) and can notice why it was interrupted.
void poll_interrupt(PollDesc* pd, PollMode mode) noexcept;

// poll_fd: the fd a PollDesc was opened for.
int poll_fd(const PollDesc* pd) noexcept;

}  // namespace colony::sched

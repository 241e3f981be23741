// colony::pool_errc: the expected outcomes of submitting to a pool, as std::error_code values of
// the "colony.pool" category. They mirror ants' errors:
//
//   pool_closed         ErrPoolClosed       the pool has been released (or was released while
//                                           the caller waited for a worker)
//   pool_overload       ErrPoolOverload     no worker free and the pool is nonblocking, or
//                                           max_blocking_tasks callers already wait
//   timeout             ErrTimeout          a deadline passed (submit_until, release_timeout)
//   invalid_pool_index  ErrInvalidPoolIndex a MultiPool index out of range
//
// Misuse at construction (negative expiry, pre_alloc without a capacity, no function, a bad
// MultiPool size or strategy) is not an error code: it throws std::invalid_argument.
#pragma once

#include <system_error>
#include <type_traits>

namespace colony {

enum class pool_errc { pool_closed = 1, pool_overload = 2, timeout = 3, invalid_pool_index = 4 };

// pool_category: the category of pool_errc; name() is "colony.pool".
const std::error_category& pool_category() noexcept;

inline std::error_code make_error_code(pool_errc e) noexcept {
  return {static_cast<int>(e), pool_category()};
}

}  // namespace colony

template <>
struct std::is_error_code_enum<colony::pool_errc> : std::true_type {};

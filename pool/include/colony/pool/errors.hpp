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
// Misuse at construction throws std::system_error whose code() is one of these, so a caller can
// tell them apart without parsing what() (ants returns them from NewPool and friends):
//
//   invalid_pool_expiry              ErrInvalidPoolExpiry             a negative expiry_duration
//   invalid_pre_alloc_size           ErrInvalidPreAllocSize           pre_alloc without a capacity
//   lack_pool_func                   ErrLackPoolFunc                  PoolWithFunc without function
//   invalid_multi_pool_size          ErrInvalidMultiPoolSize          a MultiPool of <= 0 pools
//   invalid_load_balancing_strategy  ErrInvalidLoadBalancingStrategy neither strategy
//
// A negative max_blocking_tasks (an option ants does not check) throws std::invalid_argument.
#pragma once

#include <system_error>
#include <type_traits>

namespace colony {

enum class pool_errc {
  pool_closed = 1,
  pool_overload = 2,
  timeout = 3,
  invalid_pool_index = 4,
  invalid_pool_expiry = 5,
  invalid_pre_alloc_size = 6,
  lack_pool_func = 7,
  invalid_multi_pool_size = 8,
  invalid_load_balancing_strategy = 9,
};

// pool_category: the category of pool_errc; name() is "colony.pool".
const std::error_category& pool_category() noexcept;

inline std::error_code make_error_code(pool_errc e) noexcept {
  return {static_cast<int>(e), pool_category()};
}

namespace detail {
// throw_pool_error: throws std::system_error(e, what); what() reads "<what>: <message of e>".
[[noreturn]] void throw_pool_error(pool_errc e, const char* what);
}  // namespace detail

}  // namespace colony

template <>
struct std::is_error_code_enum<colony::pool_errc> : std::true_type {};

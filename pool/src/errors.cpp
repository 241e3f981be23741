#include "colony/pool/errors.hpp"

#include <string>

namespace colony {

namespace {

class PoolCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "colony.pool"; }
  std::string message(int ev) const override {
    switch (static_cast<pool_errc>(ev)) {
      case pool_errc::pool_closed:
        return "this pool has been closed";
      case pool_errc::pool_overload:
        return "too many callers blocked on submit, or the pool is nonblocking";
      case pool_errc::timeout:
        return "operation timed out";
      case pool_errc::invalid_pool_index:
        return "invalid pool index";
      case pool_errc::invalid_pool_expiry:
        return "invalid expiry for pool";
      case pool_errc::invalid_pre_alloc_size:
        return "can not set up a negative capacity under pre_alloc mode";
      case pool_errc::lack_pool_func:
        return "must provide function for pool";
      case pool_errc::invalid_multi_pool_size:
        return "invalid size for multiple pool";
      case pool_errc::invalid_load_balancing_strategy:
        return "invalid load-balancing strategy";
    }
    return "unknown colony.pool error " + std::to_string(ev);
  }
};

}  // namespace

namespace detail {
void throw_pool_error(pool_errc e, const char* what) {
  throw std::system_error(make_error_code(e), what);
}
}  // namespace detail

const std::error_category& pool_category() noexcept {
  static const PoolCategory category;
  return category;
}

}  // namespace colony

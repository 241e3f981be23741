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
    }
    return "unknown colony.pool error " + std::to_string(ev);
  }
};

}  // namespace

const std::error_category& pool_category() noexcept {
  static const PoolCategory category;
  return category;
}

}  // namespace colony

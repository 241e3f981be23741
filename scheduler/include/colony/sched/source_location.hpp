// colony::SourceLocation: where a fiber was spawned, for dumps and panic messages.
// std::source_location is not usable with every supported compiler (clang 14 with libstdc++ 12
// lacks __builtin_source_location), so colony has its own, built on the __builtin_FILE /
// __builtin_LINE / __builtin_FUNCTION default arguments that GCC and Clang both evaluate at the
// outermost call site.
#pragma once

namespace colony {

class SourceLocation {
 public:
  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          unsigned line = __builtin_LINE(),
                                          const char* function = __builtin_FUNCTION()) noexcept {
    return SourceLocation(file, line, function);
  }
  constexpr SourceLocation() noexcept = default;

  constexpr const char* file_name() const noexcept { return file_; }
  constexpr unsigned line() const noexcept { return line_; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  constexpr SourceLocation(const char* file, unsigned line, const char* function) noexcept
      : file_(file), line_(line), function_(function) {}
  const char* file_ = "";
  unsigned line_ = 0;
  const char* function_ = "";
};

}  // namespace colony
